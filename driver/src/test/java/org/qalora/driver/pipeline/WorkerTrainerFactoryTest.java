package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.plan.PlanSettings;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.train.AdapterState;
import org.qalora.worker.backend.cuda.CudaBackend;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;

/**
 * The backend choice of the real trainer factory, without Spark: the device, precision and recompute are part of
 * its identity (the executor cache key), the initial state is made on the CPU whatever the device, and a GPU that
 * cannot be used fails the open with the reason. The prepared dataset is a hand-written manifest and lengths file
 * (the plan needs nothing else; no batch is read).
 */
class WorkerTrainerFactoryTest {
    @TempDir
    static Path dir;

    private static String dataset;

    @BeforeAll
    static void preparedDataset() throws Exception {
        dataset = HandWrittenDataset.write(dir);
    }

    private static WorkerTrainerFactory factory(String device, Precision precision, boolean recompute) {
        return new WorkerTrainerFactory(Fixtures.tinyLlamaGptq().toString(), dataset, null, new PlanSettings(42L, 2, 2, 2, 0, 256),
                QaloraConfig.allProjections(4, 8.0, 32,
                Pooling.MEAN, 0.0), null, 4, 1, new ShippedHadoopConf(new Configuration()), device, precision,
                recompute);
    }

    @Test
    void theScheduleAndWarmupOfTrainReachTheWorker() {
        WorkerTrainerFactory cosine = new WorkerTrainerFactory(Fixtures.tinyLlamaGptq().toString(), dataset, null,
                new PlanSettings(42L, 2, 2, 2, 0, 256), QaloraConfig.allProjections(4, 8.0, 32, Pooling.MEAN, 0.0),
                1e-3, org.qalora.worker.train.Schedule.COSINE, 2, 10, 1, new ShippedHadoopConf(new Configuration()),
                "cpu", null, false);
        var config = cosine.trainingConfig();
        assertEquals(0.0, config.learningRateAt(0), "warmup starts at 0");
        assertEquals(5e-4, config.learningRateAt(1), 1e-12, "half way up");
        assertEquals(1e-3, config.learningRateAt(2), 1e-12, "peak after warmup");
        assertTrue(config.learningRateAt(9) < 1e-4, "cosine decays towards the end: " + config.learningRateAt(9));
        assertEquals(1e-3, factory("cpu", null, false).trainingConfig().withLearningRate(1e-3).learningRateAt(9),
                "constant without --lr-schedule");
        assertNotEquals(cosine.identity(), factory("cpu", null, false).identity());
    }

    @Test
    void deviceAndPrecisionAndRecomputeArePartOfTheIdentity() {
        WorkerTrainerFactory base = factory("auto", null, false);
        assertEquals(base.identity(), factory("AUTO", null, false).identity());
        assertTrue(base.identity().contains("|device=auto|precision=auto|recompute=false"), base.identity());
        for (WorkerTrainerFactory other : new WorkerTrainerFactory[] {factory("cpu", null, false),
                factory("gpu", null, false), factory("gpu:1", null, false), factory("auto", Precision.FP32, false),
                factory("auto", Precision.BF16, false), factory("auto", null, true)}) {
            assertNotEquals(base.identity(), other.identity());
        }
        assertNotEquals(factory("gpu", Precision.FP32, false).identity(), factory("gpu", Precision.BF16, false).identity());
        assertTrue(factory("auto", null, true).trainingConfig().recompute());
        assertFalse(base.trainingConfig().recompute());
    }

    @Test
    void badDeviceSettingsFailWhenTheFactoryIsBuilt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> factory("gpu:x", null, false));
        assertTrue(e.getMessage().contains("'gpu:x'"), e.getMessage());
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class,
                () -> factory("cpu", Precision.BF16, false));
        assertTrue(b.getMessage().contains("bf16 needs a GPU"), b.getMessage());
    }

    @Test
    void theInitialStateIsMadeOnTheCpuWhateverTheDevice() {
        AdapterTensors onCpu = factory("cpu", null, false).initialState(7); // from config.json: opens no backend
        AdapterTensors gpuRun = factory("gpu:7", Precision.BF16, true).initialState(7); // never opens the GPU
        assertEquals(onCpu.keys(), gpuRun.keys());
        for (String k : onCpu.keys()) {
            assertArrayEquals(onCpu.tensor(k).weights(), gpuRun.tensor(k).weights(), k);
        }
    }

    /**
     * The driver makes the initial adapter from config.json and the seed: a model directory holding only config.json
     * (no weights at all) gives the adapter that loading the whole model gives, bit for bit.
     */
    @Test
    void theInitialStateNeedsOnlyConfigJson() throws Exception {
        Path configOnly = Files.createDirectories(dir.resolve("config-only"));
        Files.copy(Fixtures.tinyLlamaGptq().resolve("config.json"), configOnly.resolve("config.json"));
        QaloraConfig cfg = QaloraConfig.allProjections(4, 8.0, 32, Pooling.MEAN, 0.0);
        WorkerTrainerFactory f = new WorkerTrainerFactory(configOnly.toString(), dataset, null,
                new PlanSettings(42L, 2, 2, 2, 0, 256), cfg, null, 4, 1, new ShippedHadoopConf(new Configuration()),
                "cpu", null, false);
        AdapterTensors fromConfig = f.initialState(7);
        AdapterTensors fromModel;
        try (CpuBackend be = new CpuBackend(1)) {
            fromModel = WorkerTrainerFactory.toTensors(AdapterState.initial(
                    LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be), cfg, 7));
        }
        assertTrue(fromConfig.bitwiseEquals(fromModel), "same initial adapter");
        // a group size that differs from the checkpoint's quantization is refused from config.json already
        WorkerTrainerFactory wrong = new WorkerTrainerFactory(configOnly.toString(), dataset, null,
                new PlanSettings(42L, 2, 2, 2, 0, 256), QaloraConfig.allProjections(4, 8.0, 64, Pooling.MEAN, 0.0), null,
                4, 1, new ShippedHadoopConf(new Configuration()), "cpu", null, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> wrong.initialState(7));
        assertTrue(e.getMessage().contains("differs from the model's quantization group size 32"), e.getMessage());
    }

    @Test
    void openingOnAnUnusableGpuSaysWhy() {
        String why = CudaBackend.unusableReason(7);
        Assumptions.assumeTrue(why != null, "GPU 7 is usable here");
        WorkerTrainerFactory f = factory("gpu:7", null, false);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> f.open("cpu"));
        assertTrue(e.getMessage().contains("gpu:7") && e.getMessage().contains(why), e.getMessage());
        // a task given GPU 7 by Spark under --device auto resolves to it too
        IllegalStateException t = assertThrows(IllegalStateException.class, () -> factory("auto", null, false).open("gpu:7"));
        assertTrue(t.getMessage().contains(why), t.getMessage());
    }
}
