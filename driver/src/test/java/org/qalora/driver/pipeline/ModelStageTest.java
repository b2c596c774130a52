package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
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

/**
 * The model stage on Spark local mode: the demo model generated and quantized (by Spark tasks, one per shard) once
 * and reused, refusals before any work.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class ModelStageTest {
    private static JavaSparkContext jsc;

    @TempDir
    Path dir;

    @BeforeAll
    static void startSpark() {
        jsc = new JavaSparkContext(SparkSettings.apply(new SparkConf(), "local[2]", "ModelStageTest")
                .set("spark.ui.enabled", "false"));
    }

    @AfterAll
    static void stopSpark() {
        if (jsc != null) {
            jsc.stop();
        }
    }

    private static ModelStage stage(java.util.function.Consumer<String> log) {
        ShardJob tasks = new ShardJob(jsc, new Storage(new Configuration()), FaultPlan.none(), 1, log);
        return new ModelStage(HadoopPaths.defaults(), tasks, 60_000, log);
    }

    @Test
    void theDemoRunGeneratesAndQuantizesItsModelOnceAndReusesIt() throws Exception {
        List<String> log = new ArrayList<>();
        ModelStage stage = stage(log::add);
        Path repo = Fixtures.root().getParent();
        ModelStage.Resolved r = stage.resolve(null, null, true, 4, 32, 42, dir.toString(), repo);
        assertEquals(dir.resolve("base-quantized").toString(), r.baseModel());
        assertTrue(r.config().isQuantized());
        assertEquals(4, r.config().quantization().bits());
        assertEquals(32, r.config().quantization().groupSize());
        assertTrue(Files.isRegularFile(dir.resolve("base-quantized/tokenizer.json")), "tokenizer copied with the model");
        assertTrue(Files.isRegularFile(dir.resolve("base-quantized/" + Checkpoint.INDEX_FILE)), "sharded (60 KB shards)");
        assertTrue(log.get(0).startsWith("generating the demo model (random weights, NOT a trained model)"), log.toString());
        assertTrue(log.stream().anyMatch(l -> l.startsWith("quantize: ") && l.contains("shard task(s)")), log.toString());
        assertFalse(Files.exists(dir.resolve("base-quantized/_attempts")));
        log.clear();
        stage.resolve(null, null, true, 4, 32, 42, dir.toString(), repo);
        assertEquals(List.of("quantize: reusing " + dir.resolve("base-quantized")), log);
    }

    @Test
    void aTokenizerTooLargeForTheModelIsRefusedBeforeAnyWork() {
        ModelStage stage = stage(s -> {});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stage.resolve(
                Fixtures.tinyLlamaGptq().toString(), Fixtures.tokenizer().toString(), true, 4, 32, 1, dir.toString(),
                Fixtures.root().getParent()));
        assertTrue(e.getMessage().contains("has vocab_size 512"), e.getMessage());
        assertEquals(0, dir.toFile().list().length, "nothing written");
    }

    @Test
    void aMissingModelIsNamed() {
        ModelStage stage = stage(s -> {});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stage.resolve(
                dir.resolve("nope").toString(), null, true, 4, 32, 1, dir.toString(), Fixtures.root().getParent()));
        assertTrue(e.getMessage().contains("--model " + dir.resolve("nope") + " does not exist"), e.getMessage());
    }

    @Test
    void plainLoraTrainsTheFloatModelAndRefusesAGptqOne() throws Exception {
        ModelStage stage = stage(s -> {});
        String claim = Fixtures.root().resolveSibling("samples").resolve("claim/model").toString();
        ModelStage.Resolved r = stage.resolve(claim, null, false, 4, 32, 1, dir.toString(), Fixtures.root().getParent());
        assertEquals(claim, r.baseModel(), "no quantize stage for plain LoRA");
        assertTrue(!r.config().isQuantized());
        assertEquals(0, dir.toFile().list().length, "nothing written");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stage.resolve(
                Fixtures.tinyLlamaGptq().toString(), null, false, 4, 32, 1, dir.toString(), Fixtures.root().getParent()));
        assertTrue(e.getMessage().contains("--method lora trains plain LoRA on a float model")
                && e.getMessage().contains("4-bit GPTQ checkpoint"), e.getMessage());
    }
}
