package org.qalora.driver.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.plan.HeldOutBatches;
import org.qalora.datasets.plan.PlannedBatch;
import org.qalora.datasets.plan.ShardBatchReader;
import org.qalora.datasets.plan.TokenBatch;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.pipeline.PublishStage;
import org.qalora.driver.pipeline.TrainPipeline;
import org.qalora.driver.rounds.RoundMetrics;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.quantize.ModelQuantizer;
import org.qalora.worker.train.HeldOutLoss;
import org.qalora.worker.train.MicroBatch;

/**
 * {@code train} on the bundled claim sample (Spark local mode, CPU), a few steps of each method with the recipe's
 * settings scaled down (rank 16, alpha 32, all 7 projections, constant LR, clip 0.3, random sequences per step):
 * <ol>
 *   <li>{@code --method lora}: the held-out loss of dev.json after training is below the float base model's; the
 *   published model is float32 W + s B A with a plain LoRA adapter beside it, and RTN-quantizing it ("LoRA, then
 *   quantize") gives a GPTQ model that loads;
 *   <li>{@code --method qalora} on the 2-bit RTN g32 base: the held-out loss falls below the quantized base's, and
 *   the published model is quantized.
 * </ol>
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class ClaimTrainTest {
    @TempDir
    static Path dir;
    private static SparkSession spark;
    private static final Path REPO = ClaimSampleTest.CLAIM.getParent().getParent();
    /** The RTN run's held-out losses (base, after training), for the GPTQ run to beat. */
    private static double rtnBase = Double.NaN;
    private static double rtnAfter = Double.NaN;

    @BeforeAll
    static void start() {
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2]", "ClaimTrainTest").set("spark.ui.enabled", "false");
        spark = SparkSession.builder().config(conf).getOrCreate();
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    private static TrainPipeline.Outcome train(String output, Map<String, Object> extra, List<String> log) {
        Map<String, Object> flags = new LinkedHashMap<>();
        flags.put("model", ClaimSampleTest.CLAIM.resolve("model").toString());
        flags.put("data", List.of(ClaimSampleTest.CLAIM.resolve("train.json").toString()));
        flags.put("eval-data", List.of(ClaimSampleTest.CLAIM.resolve("dev.json").toString()));
        flags.put("eval-every", 2);
        flags.put("output", dir.resolve(output).toString());
        flags.put("rounds", 2);
        flags.put("steps-per-round", 3);
        flags.put("slots", 2);
        flags.put("batch-size", 8);
        flags.put("micro-batch-tokens", 1024);
        flags.put("rank", 16);
        flags.put("alpha", 32);
        flags.put("dropout", 0.0);
        flags.put("device", "cpu");
        flags.putAll(extra);
        TrainJob job = TrainJobLoader.build("test", TrainJobLoader.defaults(REPO.toString()), flags);
        return new TrainPipeline(REPO, log::add).run(job, spark);
    }

    /** The held-out loss of a model alone (no adapter) on the prepared dev set, as the run measures it. */
    private static double heldOutLoss(String model, String evalData) throws Exception {
        Configuration conf = new Configuration();
        ShardBatchReader reader = ShardBatchReader.open(evalData, conf);
        List<MicroBatch> batches = new ArrayList<>();
        for (PlannedBatch b : HeldOutBatches.load(evalData, conf, 1024)) {
            TokenBatch t = reader.read(b);
            batches.add(new MicroBatch(t.batchSize(), t.seqLen(), t.inputIds(), t.labels()));
        }
        try (CpuBackend be = new CpuBackend(2)) {
            HeldOutLoss.Result r = HeldOutLoss.evaluate(LlamaModel.load(model, be), null, null, batches);
            return r.lossSum() / r.targetTokens();
        }
    }

    @Test
    @Order(1)
    void loraLowersTheHeldOutLossAndPublishesAFloatModelThatQuantizes() throws Exception {
        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out = train("lora", Map.of("method", "lora", "lr", 1e-3), log);
        List<RoundMetrics> rounds = out.rounds().metrics();
        assertEquals(2, rounds.size(), String.join("\n", log));
        assertEquals(null, rounds.get(0).evalLoss(), "eval-every 2: round 1 is not evaluated");
        Double after = rounds.get(1).evalLoss();
        assertNotNull(after, String.join("\n", log));
        assertEquals(1577, rounds.get(1).evalTargetTokens(), "every target token of the 250 dev records");
        double before = heldOutLoss(ClaimSampleTest.CLAIM.resolve("model").toString(), dir.resolve("lora/eval-data").toString());
        System.out.printf("claim, LoRA, 6 steps of 8 x 2 slots: held-out loss %.4f -> %.4f%n", before, after);
        assertTrue(after < before - 0.3, "held-out loss " + before + " -> " + after + "\n" + String.join("\n", log));
        assertTrue(log.stream().anyMatch(l -> l.startsWith("round 2/2: loss") && l.contains("held-out loss")),
                String.join("\n", log));

        String published = out.published().toUri().getPath();
        LlamaConfig config = LlamaConfig.read(published);
        assertFalse(config.isQuantized());
        assertEquals("float32", config.json().get("dtype").asText());
        try (Checkpoint ck = Checkpoint.open(published)) {
            assertEquals(DType.F32, ck.info("model.layers.7.mlp.down_proj.weight").dtype());
            assertFalse(ck.contains("lm_head.weight"), "tied embeddings stay tied");
        }
        assertTrue(PeftAdapter.read(published + "/" + PublishStage.ADAPTER_DIR).config().plainLora());
        // the published merged model, evaluated alone, has the run's held-out loss
        assertEquals(after, heldOutLoss(published, dir.resolve("lora/eval-data").toString()), 1e-4);

        String quantized = dir.resolve("lora-2bit").toString();
        GptqConfig gptq = GptqConfig.of(2, 32);
        try (Checkpoint source = Checkpoint.open(published)) {
            var m = ModelQuantizer.quantize(source, config, gptq, ModelQuantizer.Method.RTN, null, null,
                    new PrintWriter(new StringWriter()));
            ModelQuantizer.write(source, config, gptq, m, quantized, ModelQuantizer.DEFAULT_MAX_SHARD_BYTES,
                    HadoopPaths.defaults());
        }
        assertTrue(LlamaConfig.read(quantized).isQuantized());
        double quantizedLoss = heldOutLoss(quantized, dir.resolve("lora/eval-data").toString());
        System.out.printf("claim, LoRA then 2-bit RTN g32: held-out loss %.4f%n", quantizedLoss);
        assertTrue(Double.isFinite(quantizedLoss));
    }

    @Test
    @Order(2)
    void qaloraOnA2BitBaseLowersTheHeldOutLossAndPublishesAQuantizedModel() throws Exception {
        List<String> log = new ArrayList<>();
        String prepared = dir.resolve("lora/data").toString(), preparedDev = dir.resolve("lora/eval-data").toString();
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("lr", 5e-3);
        extra.put("bits", 2);
        extra.put("group-size", 32);
        extra.put("quantize", "rtn");                        // the recipe's base; GPTQ's is the next test's
        extra.put("data", List.of(prepared));                // the first test's prepared shards, used as they are
        extra.put("eval-data", List.of(preparedDev));
        TrainPipeline.Outcome out = train("qalora", extra, log);
        assertTrue(log.contains("data: using the prepared dataset file:" + prepared), String.join("\n", log));
        Double after = out.rounds().metrics().get(1).evalLoss();
        assertNotNull(after);
        double before = heldOutLoss(dir.resolve("qalora/base-quantized").toString(), preparedDev);
        rtnBase = before;
        rtnAfter = after;
        System.out.printf("claim, QA-LoRA 2-bit g32, 6 steps of 8 x 2 slots: held-out loss %.4f -> %.4f%n", before, after);
        assertTrue(after < before - 0.3, "held-out loss " + before + " -> " + after + "\n" + String.join("\n", log));
        assertTrue(LlamaConfig.read(out.published().toUri().getPath()).isQuantized());
        assertTrue(Files.isDirectory(Path.of(out.published().toUri().getPath(), PublishStage.ADAPTER_DIR)));
    }

    /**
     * {@code --quantize gptq} (small calibration: 16 windows of 256 tokens drawn from the training data) against the
     * previous test's RTN base, same model, bits, groups and training: GPTQ's base has a lower held-out loss, and so
     * has the model trained on it.
     */
    @Test
    @Order(3)
    void gptqBaseGivesALowerHeldOutLossThanRtn() throws Exception {
        assertTrue(Double.isFinite(rtnAfter), "runs after the RTN test");
        List<String> log = new ArrayList<>();
        String prepared = dir.resolve("lora/data").toString(), preparedDev = dir.resolve("lora/eval-data").toString();
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("lr", 5e-3);
        extra.put("bits", 2);
        extra.put("group-size", 32);
        extra.put("quantize", "gptq");
        extra.put("calibration-samples", 16);
        extra.put("calibration-tokens", 256);
        extra.put("data", List.of(prepared));
        extra.put("eval-data", List.of(preparedDev));
        long start = System.nanoTime();
        TrainPipeline.Outcome out = train("qalora-gptq", extra, log);
        double seconds = (System.nanoTime() - start) / 1e9;
        assertTrue(log.stream().anyMatch(l -> l.contains("GPTQ 2-bit, group size 32, calibration 16 x 256 tokens")),
                String.join("\n", log));
        Double after = out.rounds().metrics().get(1).evalLoss();
        assertNotNull(after);
        double base = heldOutLoss(dir.resolve("qalora-gptq/base-quantized").toString(), preparedDev);
        System.out.printf("claim, 2-bit g32 base, held-out loss: RTN %.4f, GPTQ %.4f; after QA-LoRA (6 steps of 8 x 2"
                + " slots): RTN %.4f, GPTQ %.4f (GPTQ run %.1f s)%n", rtnBase, base, rtnAfter, after, seconds);
        assertTrue(base < rtnBase - 0.1, "GPTQ base " + base + " vs RTN base " + rtnBase);
        assertTrue(after < rtnAfter, "after training: GPTQ " + after + " vs RTN " + rtnAfter);
    }
}
