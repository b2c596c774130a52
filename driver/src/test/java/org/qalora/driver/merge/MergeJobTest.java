package org.qalora.driver.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.shard.ShardJob;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.merge.ShardedMerge;

/**
 * The merge job on Spark local mode with task retries ({@code local[2,4]}, Kryo registration required): the same
 * files as the one-process streaming merge, whatever the shard size; a task that fails once after renaming its
 * shard into place is retried and the result is byte-identical; no attempt directory is left; bad input is
 * refused before any task runs. (Executor loss with real executor JVMs: tests/MergeJobOnClusterTest.)
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class MergeJobTest {
    private static final long SMALL_SHARDS = 60_000;
    private static JavaSparkContext jsc;
    private static Storage storage;
    @TempDir
    static Path tmp;

    @BeforeAll
    static void startSpark() {
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2,4]", "MergeJobTest").set("spark.ui.enabled", "false");
        jsc = new JavaSparkContext(conf);
        storage = new Storage(new Configuration());
    }

    @AfterAll
    static void stopSpark() {
        if (jsc != null) {
            jsc.stop();
        }
    }

    private static Merger.Report merge(String out, long maxShard, FaultPlan faults, List<String> log) {
        return new MergeJob(new ShardJob(jsc, storage, faults, 1, log::add), "cpu", log::add).run(
                Fixtures.tinyLlamaGptq().toString(), Fixtures.tinyLlamaAdapter().toString(), out, maxShard);
    }

    static void assertSameFiles(Path a, Path b) throws IOException {
        List<String> files;
        try (Stream<Path> s = Files.list(a)) {
            files = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        try (Stream<Path> s = Files.list(b)) {
            assertEquals(files, s.map(p -> p.getFileName().toString()).sorted().toList());
        }
        for (String f : files) {
            assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(b.resolve(f)), f);
        }
    }

    @Test
    void theJobWritesWhatTheOneProcessMergeWrites() throws IOException {
        Path local = tmp.resolve("local"), job = tmp.resolve("job");
        ShardedMerge.merge(Fixtures.tinyLlamaGptq().toString(), Fixtures.tinyLlamaAdapter().toString(), local.toString(),
                SMALL_SHARDS, HadoopPaths.defaults());
        List<String> log = new ArrayList<>();
        Merger.Report r = merge(job.toString(), SMALL_SHARDS, FaultPlan.none(), log);
        assertTrue(r.relativeLogitError() <= Merger.LOGIT_TOLERANCE, "probe error " + r.relativeLogitError());
        assertEquals(14, r.mergedProjections());
        assertTrue(Files.exists(job.resolve(Checkpoint.INDEX_FILE)));
        assertFalse(Files.exists(job.resolve(org.qalora.driver.shard.AttemptFiles.ATTEMPTS_DIR)), "attempt directories removed");
        assertSameFiles(local, job);
        assertTrue(log.get(0).startsWith("merge: ") && log.get(0).contains("shard task(s)"), log.toString());
    }

    @Test
    void aTaskFailingAfterItsRenameIsRetriedAndTheFilesAreByteIdentical() throws IOException {
        Path clean = tmp.resolve("clean"), faulty = tmp.resolve("faulty"), faultyMeta = tmp.resolve("faulty-meta");
        merge(clean.toString(), SMALL_SHARDS, FaultPlan.none(), new ArrayList<>());
        merge(faulty.toString(), SMALL_SHARDS, FaultPlan.parse("mergethrow:1"), new ArrayList<>());
        assertSameFiles(clean, faulty);
        // the last task writes config.json, the tokenizer files and the index
        int shards;
        try (Stream<Path> s = Files.list(clean)) {
            shards = (int) s.filter(p -> p.getFileName().toString().startsWith("model-")).count();
        }
        merge(faultyMeta.toString(), SMALL_SHARDS, FaultPlan.parse("mergethrow:" + shards), new ArrayList<>());
        assertSameFiles(clean, faultyMeta);
    }

    @Test
    void aBaseThatIsNotQuantizedIsRefusedBeforeAnyTaskRuns() {
        Path out = tmp.resolve("refused");
        long jobsBefore = jsc.sc().statusTracker().getJobIdsForGroup(null).length;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new MergeJob(new ShardJob(jsc, storage, FaultPlan.none(), 1, s -> {}), "cpu", s -> {}).run(
                        Fixtures.tinyLlama().toString(), Fixtures.tinyLlamaAdapter().toString(), out.toString(),
                        SMALL_SHARDS));
        assertTrue(e.getMessage().contains("not group-quantized"), e.getMessage());
        assertEquals(jobsBefore, jsc.sc().statusTracker().getJobIdsForGroup(null).length, "no Spark job ran");
        assertFalse(Files.exists(out));
    }

    /** The check runs on the device the run asked for: a GPU that cannot be used here fails it with the reason. */
    @Test
    void theCheckRunsOnTheRequestedDevice() {
        String why = org.qalora.worker.backend.cuda.CudaBackend.unusableReason(7);
        org.junit.jupiter.api.Assumptions.assumeTrue(why != null, "GPU 7 is usable here");
        List<String> log = new ArrayList<>();
        Exception e = assertThrows(Exception.class, () -> new MergeJob(new ShardJob(jsc, storage, FaultPlan.none(), 1,
                log::add), "gpu:7", log::add).run(Fixtures.tinyLlamaGptq().toString(),
                Fixtures.tinyLlamaAdapter().toString(), tmp.resolve("on-gpu7").toString(), SMALL_SHARDS));
        assertTrue(String.valueOf(e.getMessage()).contains(why), e.getMessage());
        List<String> cpu = new ArrayList<>();
        merge(tmp.resolve("on-cpu").toString(), SMALL_SHARDS, FaultPlan.none(), cpu);
        assertTrue(cpu.contains("merge: checked on an executor's cpu in fp32"), cpu.toString());
    }

    /** An adapter file without a tensor its config adapts is refused from the file's header, before any task. */
    @Test
    void anIncompleteAdapterIsRefusedBeforeAnyTaskRunsNamingFileAndTensor() throws IOException {
        Path adapter = Files.createDirectories(tmp.resolve("incomplete"));
        Files.copy(Fixtures.tinyLlamaAdapter().resolve("adapter_config.json"), adapter.resolve("adapter_config.json"));
        org.qalora.quant.safetensors.SafetensorsWriter w = new org.qalora.quant.safetensors.SafetensorsWriter();
        String dropped = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight";
        try (var f = org.qalora.quant.safetensors.SafetensorsFile.open(
                Fixtures.tinyLlamaAdapter().resolve("adapter_model.safetensors").toString())) {
            for (String name : f.names()) {
                if (!name.equals(dropped)) {
                    w.addBytes(name, f.info(name).dtype(), f.bytes(name), f.info(name).shape());
                }
            }
        }
        w.write(adapter.resolve("adapter_model.safetensors").toString());
        Path out = tmp.resolve("refused-adapter");
        long jobsBefore = jsc.sc().statusTracker().getJobIdsForGroup(null).length;
        Exception e = assertThrows(RuntimeException.class, () -> new MergeJob(new ShardJob(jsc, storage,
                FaultPlan.none(), 1, s -> {}), "cpu", s -> {}).run(Fixtures.tinyLlamaGptq().toString(), adapter.toString(),
                out.toString(), SMALL_SHARDS));
        assertTrue(e.getMessage().contains(adapter.resolve("adapter_model.safetensors") + " has no tensor " + dropped)
                && e.getMessage().contains("target_modules"), e.getMessage());
        assertEquals(jobsBefore, jsc.sc().statusTracker().getJobIdsForGroup(null).length, "no Spark job ran");
        assertFalse(Files.exists(out));
    }
}
