package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.plan.PlanSettings;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.train.Schedule;

/**
 * {@code --warm-start DIR} where DIR is a PEFT adapter directory without {@code adapter_state.safetensors} (the
 * fixture QA-LoRA adapter: r 8, alpha 16, group size 32, mean pooling, all seven projections): round 0 is its A and B
 * with zero Adam moments at step 0, and the log says the moments are fresh; an adapter of another shape is refused
 * while the settings are resolved (before any data or model work), naming each difference.
 */
class PeftWarmStartTest {
    @TempDir
    static Path dir;
    private static Path adapter;
    private static final Storage STORAGE = new Storage(new Configuration());

    @BeforeAll
    static void copyTheFixtureAdapter() throws Exception {
        adapter = Files.createDirectories(dir.resolve("peft-adapter"));
        for (String f : List.of(PeftAdapter.CONFIG_FILE, PeftAdapter.WEIGHTS_FILE)) {
            Files.copy(Fixtures.tinyLlamaAdapter().resolve(f), adapter.resolve(f));
        }
    }

    private static TrainJob job(Path warmStart, Map<String, Object> overrides) {
        Map<String, Object> flags = new LinkedHashMap<>();
        flags.put("model", Fixtures.tinyLlamaGptq().toString());
        flags.put("output", dir.resolve("out-" + System.nanoTime()).toString());
        flags.put("warm-start", warmStart.toString());
        flags.putAll(overrides);
        return TrainJobLoader.build("test", TrainJobLoader.defaults(Fixtures.root().getParent().toString()), flags);
    }

    private static WarmStart.Resolution resolve(TrainJob job, List<String> log) {
        return WarmStart.resolve(job, new RunDirectory(STORAGE, job.output()), STORAGE, log::add);
    }

    @Test
    void roundZeroIsTheAdaptersWeightsWithFreshMomentsAtStepZero() throws Exception {
        List<String> log = new ArrayList<>();
        WarmStart.Resolution r = resolve(job(adapter, Map.of()), log);
        assertEquals(List.of(), r.problems());
        WarmStart.Source source = r.source();
        assertTrue(source.peft() && source.step() == 0, source.toString());
        assertEquals(source, WarmStart.Source.parse(r.job().warmStart()).orElseThrow(), "run.json's value round-trips");
        assertTrue(log.stream().anyMatch(l -> l.contains("PEFT adapter " + STORAGE.path(adapter.toString()))
                && l.contains("fresh Adam moments, step 0")), String.join("\n", log));

        String dataset = HandWrittenDataset.write(Files.createDirectories(dir.resolve("data")));
        WorkerTrainerFactory factory = new WorkerTrainerFactory(Fixtures.tinyLlamaGptq().toString(), dataset, null,
                new PlanSettings(42L, 2, 2, 2, 0, 256), QaloraConfig.allProjections(8, 16.0, 32, Pooling.MEAN, 0.0),
                null, Schedule.CONSTANT, 0, 4, 1, new ShippedHadoopConf(new Configuration()), "cpu", null, false, source);
        AdapterTensors round0 = factory.initialState(7);
        Map<String, float[]> peft = PeftAdapter.read(adapter.toString()).weights();
        assertEquals(peft.keySet(), new java.util.HashSet<>(round0.keys()));
        assertEquals(0, round0.step());
        for (String k : round0.keys()) {
            AdapterTensors.Tensor t = round0.tensor(k);
            assertArrayEquals(peft.get(k), t.weights(), k);
            assertArrayEquals(new float[t.size()], t.adamM(), k + ": fresh first moment");
            assertArrayEquals(new float[t.size()], t.adamV(), k + ": fresh second moment");
        }
    }

    @Test
    void anAdapterOfAnotherShapeIsRefusedNamingEveryDifference() throws Exception {
        WarmStart.Resolution r = resolve(job(adapter, Map.of("rank", 4, "pooling", "sum", "group-size", 64,
                "alpha", 8.0)), new ArrayList<>());
        assertNull(r.source());
        String problem = String.join("\n", r.problems());
        for (String want : List.of("--warm-start " + STORAGE.path(adapter.toString()) + " is a PEFT adapter of another shape",
                "r 8 there, --rank 4 here", "lora_alpha 16.0 there, --alpha 8.0 here",
                "qalora_group_size 32 there, --group-size 64 here", "qalora_pooling mean there, --pooling sum here")) {
            assertTrue(problem.contains(want), "missing '" + want + "' in: " + problem);
        }

        Path twoTargets = Files.createDirectories(dir.resolve("two-targets"));
        Files.copy(adapter.resolve(PeftAdapter.WEIGHTS_FILE), twoTargets.resolve(PeftAdapter.WEIGHTS_FILE));
        Files.writeString(twoTargets.resolve(PeftAdapter.CONFIG_FILE), Files.readString(adapter.resolve(
                PeftAdapter.CONFIG_FILE)).replaceAll("(?s)\"target_modules\"\\s*:\\s*\\[[^]]*]",
                "\"target_modules\": [\"q_proj\", \"v_proj\"]"));
        String targets = String.join("\n", resolve(job(twoTargets, Map.of()), new ArrayList<>()).problems());
        assertTrue(targets.contains("target_modules [q_proj, v_proj] there; this run adapts all seven projections"),
                targets);

        Path lora = Files.createDirectories(dir.resolve("plain-lora"));
        Files.copy(adapter.resolve(PeftAdapter.WEIGHTS_FILE), lora.resolve(PeftAdapter.WEIGHTS_FILE));
        Files.writeString(lora.resolve(PeftAdapter.CONFIG_FILE), Files.readString(adapter.resolve(PeftAdapter.CONFIG_FILE))
                .replace("\"use_qalora\": true", "\"use_qalora\": false"));
        String method = String.join("\n", resolve(job(lora, Map.of()), new ArrayList<>()).problems());
        assertTrue(method.contains("use_qalora false there, --method qalora here"), method);
    }

    @Test
    void aDirectoryThatIsNoAdapterIsRefusedSayingWhatWouldDo() throws Exception {
        Path empty = Files.createDirectories(dir.resolve("not-an-adapter"));
        String problem = String.join("\n", resolve(job(empty, Map.of()), new ArrayList<>()).problems());
        assertTrue(problem.contains("nor a PEFT adapter directory (no adapter_config.json and "
                + "adapter_model.safetensors)"), problem);
    }

    @Test
    void weightsChangedAfterTheRunResolvedThemAreRefused() throws Exception {
        Path changed = Files.createDirectories(dir.resolve("changed"));
        for (String f : List.of(PeftAdapter.CONFIG_FILE, PeftAdapter.WEIGHTS_FILE)) {
            Files.copy(adapter.resolve(f), changed.resolve(f));
        }
        WarmStart.Source source = resolve(job(changed, Map.of()), new ArrayList<>()).source();
        byte[] bytes = Files.readAllBytes(changed.resolve(PeftAdapter.WEIGHTS_FILE));
        bytes[bytes.length - 1] ^= 1;
        Files.write(changed.resolve(PeftAdapter.WEIGHTS_FILE), bytes);
        WorkerTrainerFactory factory = new WorkerTrainerFactory(Fixtures.tinyLlamaGptq().toString(),
                HandWrittenDataset.write(Files.createDirectories(dir.resolve("data2"))), null,
                new PlanSettings(42L, 2, 2, 2, 0, 256), QaloraConfig.allProjections(8, 16.0, 32, Pooling.MEAN, 0.0),
                null, Schedule.CONSTANT, 0, 4, 1, new ShippedHadoopConf(new Configuration()), "cpu", null, false, source);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> factory.initialState(7));
        assertTrue(e.getMessage().contains("this run resolved its start as " + source.sha256()) && e.getMessage()
                .contains("changed since"), e.getMessage());
    }
}
