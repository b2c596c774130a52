package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.plan.TokenBatch;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.driver.pipeline.PublishStage;
import org.qalora.driver.pipeline.TrainPipeline;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.rounds.RoundMetrics;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.testing.Fixtures;

/**
 * {@code train} end to end with the real worker trainer on real executor JVMs ({@code local-cluster[2,2,1024]},
 * {@code spark.task.cpus} 2 as the Helm chart sets it: one training task per executor) and a real HDFS (MiniDFSCluster): the fixture GPTQ model (vocab 512) with a tokenizer shrunk to 512 pieces
 * ({@link SmallTokenizer}) and the bundled Alpaca sample, all on HDFS.
 * <ol>
 *   <li>training for several rounds lowers the loss; the merged model published on HDFS loads back and its logits
 *   equal those of the base model with the final adapter; the training stages take both cores of an executor
 *   and the averaging stages one ({@code --averaging-task-cpus 1}), so an executor averages two key ranges at once;
 *   <li>an executor JVM halted in the middle of a round (while training a slot, or while averaging a key range)
 *   is replaced and the task retried; the final adapter is bit-identical to the undisturbed run's;
 *   <li>a run stopped between rounds and started again, with another {@code --averaging-parts}, resumes (the log
 *   says from which round), ignores a half-written round directory, and ends bit-identical to the undisturbed run.
 * </ol>
 * One cluster and one Spark application serve all three, in order.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class TrainOnClusterTest {
    @TempDir
    static Path base;
    private static TestCluster cluster;
    private static SparkSession spark;
    private static AdapterTensors undisturbed;

    @BeforeAll
    static void start() throws Exception {
        cluster = new TestCluster(base);
        cluster.putTinyTrainingInputs();
        spark = SparkSession.builder().config(cluster.sparkConf("TrainOnClusterTest", 2)).getOrCreate();
    }

    @AfterAll
    static void stop() {
        TestCluster.stop(spark, cluster);
    }

    private static TrainJob job(String output, String data) {
        return job(cluster.uri(""), output, data, 4);
    }

    /** {@code hdfs}: the file system URI the model, tokenizer and output are on. */
    private static TrainJob job(String hdfs, String output, String data, int rounds) {
        return job(hdfs, output, data, rounds, Map.of());
    }

    /** With {@code extra} flags applied last. */
    private static TrainJob job(String hdfs, String output, String data, int rounds, Map<String, Object> extra) {
        Map<String, Object> flags = new LinkedHashMap<>();
        flags.put("model", hdfs + "/models/tiny-gptq");
        flags.put("tokenizer", hdfs + "/tok/tokenizer.json");
        flags.put("data", List.of(data));
        flags.put("output", hdfs + output);
        flags.put("rounds", rounds);
        flags.put("steps-per-round", 2);
        flags.put("slots", 2);
        flags.put("batch-size", 8);
        flags.put("micro-batch-tokens", 256);
        flags.put("seed", 7);
        // The executors get (simulated) GPU addresses to show the scheduling; the training itself runs on the CPU
        // (--device auto would ask for those GPUs, and this machine has none).
        flags.put("device", "cpu");
        flags.putAll(extra);
        return TrainJobLoader.build("test", TrainJobLoader.defaults(Fixtures.root().getParent().toString()), flags);
    }

    private static TrainPipeline.Outcome train(TrainJob job, String fault, List<String> log) {
        if (fault == null) {
            spark.conf().unset(FaultPlan.CONF_KEY);
        } else {
            spark.conf().set(FaultPlan.CONF_KEY, fault);
        }
        try {
            return new TrainPipeline(Fixtures.root().getParent(), log::add).run(job, spark);
        } finally {
            spark.conf().unset(FaultPlan.CONF_KEY);
        }
    }

    /** The tasks that did not succeed while {@code work} ran ("stage: reason"), from a Spark listener. */
    private static List<String> failedTasksWhile(Runnable work) throws InterruptedException {
        List<String> failed = java.util.Collections.synchronizedList(new ArrayList<>());
        org.apache.spark.scheduler.SparkListener listener = new org.apache.spark.scheduler.SparkListener() {
            @Override
            public void onTaskEnd(org.apache.spark.scheduler.SparkListenerTaskEnd end) {
                if (!(end.reason() instanceof org.apache.spark.Success$)) {
                    failed.add(end.stageId() + ": " + end.reason());
                }
            }
        };
        spark.sparkContext().addSparkListener(listener);
        try {
            work.run();
            for (int i = 0; i < 100 && failed.isEmpty(); i++) {
                Thread.sleep(100); // listener events arrive asynchronously
            }
        } finally {
            spark.sparkContext().removeSparkListener(listener);
        }
        return failed;
    }

    private static AdapterTensors finalAdapter(String output) {
        Storage storage = new Storage(spark.sparkContext().hadoopConfiguration());
        CheckpointStore store = new CheckpointStore(storage, storage.path(cluster.uri(output + "/checkpoints")), s -> {});
        CheckpointStore.Committed last = store.latestCommitted().orElseThrow();
        assertEquals(4, last.round());
        return store.loadState(last);
    }

    @Test
    @Order(1)
    void trainingLowersTheLossAndTheMergedModelOnHdfsEqualsTheAdapterModel() throws Exception {
        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out;
        try (StageResourceRecorder stages = new StageResourceRecorder(spark.sparkContext())) {
            // 4 key ranges on 2 executors: two each, which they average at once with 1 CPU per averaging task.
            out = train(job(cluster.uri(""), "/runs/a", cluster.uri("/data/alpaca.json"), 4,
                    Map.of("averaging-parts", 4)), null, log);
            stages.flush();
            List<StageResourceRecorder.Stage> averaging = stages.stagesOf("qalora-average-");
            List<StageResourceRecorder.Stage> training = stages.stagesOf("qalora-round-");
            assertEquals(4, averaging.size(), averaging::toString);
            assertEquals(5, training.size(), "round 0 and 4 training rounds: " + training);
            for (StageResourceRecorder.Stage t : training) {
                assertEquals(2, stages.taskCpus(t), "a training task takes the executor's 2 cores: " + t);
            }
            int most = 0;
            for (StageResourceRecorder.Stage a : averaging) {
                assertEquals(1, stages.taskCpus(a), "an averaging task takes 1 CPU: " + a);
                most = Math.max(most, stages.mostConcurrentOnOneExecutor(a));
            }
            assertEquals(2, most, "an executor ran two averaging tasks at once");
        }
        assertTrue(log.stream().anyMatch(l -> l.startsWith("averaging stage: averaging tasks take 1 CPU and no GPU")),
                String.join("\n", log));
        List<RoundMetrics> rounds = out.rounds().metrics();
        assertEquals(4, rounds.size(), String.join("\n", log));
        for (RoundMetrics m : rounds) {
            assertTrue(m.slotDevices()[0].endsWith("gpu:0") || m.slotDevices()[0].endsWith("gpu:1"),
                    "tasks read their GPU address: " + String.join(",", m.slotDevices()));
        }
        undisturbed = finalAdapter("/runs/a");

        String published = out.published().toString();
        assertTrue(published.startsWith(cluster.uri("/runs/a/v-")), published);
        var conf = spark.sparkContext().hadoopConfiguration();
        assertTrue(new ModelPublisher(new Storage(conf)).verify(out.published()).isEmpty(), "checksums match");
        assertEquals(published, cluster.uri("/runs/a/") + new String(cluster.fs().open(
                new org.apache.hadoop.fs.Path(cluster.uri("/runs/a/LATEST"))).readAllBytes(), StandardCharsets.UTF_8).trim());

        // The loss over the whole sample, base model vs base + final adapter, went down.
        String dataset = cluster.uri("/runs/a/data");
        String baseModel = cluster.uri("/models/tiny-gptq");
        String adapter = published + "/" + PublishStage.ADAPTER_DIR;
        double before = ModelEval.datasetLoss(baseModel, null, dataset, conf);
        double after = ModelEval.datasetLoss(baseModel, adapter, dataset, conf);
        // (Per-round losses are measured on each round's own few batches, too noisy to compare at this size.)
        assertTrue(after < before - 0.01, "dataset loss " + before + " -> " + after + "\n" + String.join("\n", log));

        // The merged model read back from HDFS gives the adapter model's logits.
        TokenBatch batch = ModelEval.firstBatch(dataset, conf);
        float[] merged = ModelEval.logits(published, null, batch);
        float[] adapted = ModelEval.logits(baseModel, adapter, batch);
        double err = ModelEval.relativeError(merged, adapted);
        assertTrue(err < 1e-5, "merged vs adapter logits relative error " + err);
        assertTrue(ModelEval.relativeError(ModelEval.logits(baseModel, null, batch), adapted) > 1e-4,
                "the adapter changed the model");
    }

    @Test
    @Order(2)
    void anExecutorLostMidRoundIsReplacedAndTheFinalAdapterIsBitIdentical() throws Exception {
        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out = train(job("/runs/b", cluster.uri("/runs/a/data")), "halt:2:1", log);
        assertEquals(3, out.rounds().metrics().get(1).taskAttempts(), "slot 1 of round 2 ran twice");
        assertTrue(finalAdapter("/runs/b").bitwiseEquals(undisturbed), "bit-identical to the undisturbed run");
        // An executor lost while it averages a key range of round 3 (before its part file is written): the task is
        // retried on the replacement executor and the committed state does not change.
        List<String> failed = failedTasksWhile(
                () -> train(job("/runs/b2", cluster.uri("/runs/a/data")), "averagehalt:3:1", new ArrayList<>()));
        assertTrue(failed.size() == 1 && failed.get(0).contains("ExecutorLostFailure"), failed.toString());
        assertTrue(finalAdapter("/runs/b2").bitwiseEquals(undisturbed), "bit-identical to the undisturbed run");
        Storage storage = new Storage(spark.sparkContext().hadoopConfiguration());
        var last = new CheckpointStore(storage, storage.path(cluster.uri("/runs/b2/checkpoints")), s -> {})
                .latestCommitted().orElseThrow();
        assertEquals(2, last.stateFiles().size(), "a round's state is one part per slot's key range: " + last.stateFiles());
    }

    @Test
    @Order(3)
    void aRunStoppedBetweenRoundsResumesAndEndsBitIdentical() throws Exception {
        TrainJob job = job("/runs/c", cluster.uri("/runs/a/data"));
        assertThrows(FaultPlan.RunStoppedException.class, () -> train(job, "stop:2", new ArrayList<>()));
        // A half-written next round (no manifest, a truncated file) and a temporary leftover of a commit.
        try (FSDataOutputStream o = cluster.fs().create(new org.apache.hadoop.fs.Path("/runs/c/checkpoints/round-00003/"
                + CheckpointStore.STATE_FILE))) {
            o.write(new byte[] {1, 2, 3});
        }
        cluster.fs().mkdirs(new org.apache.hadoop.fs.Path("/runs/c/checkpoints/_tmp-round-00003-crashed"));
        assertFalse(cluster.fs().exists(new org.apache.hadoop.fs.Path("/runs/c/LATEST")), "nothing published yet");

        // The restart averages in 3 key ranges where the first run averaged in 2 (one per slot, the default at this
        // size): --averaging-parts is no part of the configuration, the committed round 2's two parts are read, and
        // the count changes no bit.
        List<String> log = new ArrayList<>();
        train(job(cluster.uri(""), "/runs/c", cluster.uri("/runs/a/data"), 4, Map.of("averaging-parts", 3)), null, log);
        assertTrue(log.stream().anyMatch(l -> l.startsWith("resuming from committed round 2 ")), String.join("\n", log));
        Storage storage = new Storage(spark.sparkContext().hadoopConfiguration());
        assertEquals(3, new CheckpointStore(storage, storage.path(cluster.uri("/runs/c/checkpoints")), s -> {})
                .latestCommitted().orElseThrow().stateFiles().size(), "round 4 in 3 parts");
        assertTrue(log.stream().anyMatch(l -> l.contains("round-00003") && l.contains("torn")), String.join("\n", log));
        assertTrue(finalAdapter("/runs/c").bitwiseEquals(undisturbed), "bit-identical to the undisturbed run");
    }

    @Test
    @Order(4)
    void anOutputTheUserMayNotWriteIsRefusedWithAClearMessage() throws Exception {
        org.apache.hadoop.fs.Path locked = new org.apache.hadoop.fs.Path("/locked");
        cluster.fs().mkdirs(locked);
        cluster.fs().setPermission(locked, new org.apache.hadoop.fs.permission.FsPermission((short) 0755));
        TrainJob job = job("/locked/run", cluster.uri("/runs/a/data"));
        org.apache.hadoop.conf.Configuration conf = new org.apache.hadoop.conf.Configuration(
                spark.sparkContext().hadoopConfiguration());
        RuntimeException e = org.apache.hadoop.security.UserGroupInformation.createRemoteUser("alice").doAs(
                (java.security.PrivilegedExceptionAction<RuntimeException>) () -> assertThrows(RuntimeException.class,
                        () -> new org.qalora.driver.pipeline.RunDirectory(new Storage(conf), job.output()).claim(job, false)));
        assertTrue(e.getMessage().contains("permission denied"), e.getMessage());
        assertTrue(e.getMessage().contains("/locked/run"), e.getMessage());
        assertFalse(cluster.fs().exists(new org.apache.hadoop.fs.Path("/locked/run")));
    }

    /**
     * Executors use the job's Hadoop configuration for every file: model, dataset, start state, updates and the
     * published model all live on {@code hdfs://qalora-ns/}, a nameservice only {@code spark.hadoop.*} defines.
     */
    @Test
    @Order(5)
    void aClusterKnownOnlyToTheJobsSettingsServesTheWholeRun() throws Exception {
        String ns = "hdfs://" + TestCluster.NAMESERVICE;
        assertThrows(Exception.class, () -> org.qalora.quant.io.HadoopPaths.defaults().exists(ns + "/models/tiny-gptq"),
                "this JVM's default configuration must not know the nameservice");
        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out = train(job(ns, "/runs/ns", ns + "/runs/a/data", 1), null, log);
        assertEquals(1, out.rounds().metrics().size(), String.join("\n", log));
        String published = out.published().toString();
        assertTrue(published.startsWith(ns + "/runs/ns/v-"), published);
        var conf = spark.sparkContext().hadoopConfiguration();
        assertTrue(new ModelPublisher(new Storage(conf)).verify(out.published()).isEmpty(), "checksums match");
        assertTrue(cluster.fs().exists(new org.apache.hadoop.fs.Path("/runs/ns/LATEST")), "the same cluster, by its address");
    }

    /**
     * {@code train --quantize gptq} on the dense fixture model: calibration windows drawn from the training data,
     * calibrated and solved as Spark tasks on the two executors, layer by layer; the quantized base on HDFS equals
     * single-process GPTQ ({@code qalora quantize}'s {@code LayerwiseGptq}) on the same windows, codes, scales and
     * zeros bit for bit. The executors kept their chunks' hidden states between stages (some tasks found them in
     * memory).
     */
    @Test
    @Order(6)
    void trainQuantizesAFloatBaseWithDistributedGptqBitIdenticalToSingleProcessDespiteALostExecutor() throws Exception {
        cluster.put(Fixtures.tinyLlama(), "/models/tiny-dense");
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("model", cluster.uri("/models/tiny-dense"));
        extra.put("quantize", "gptq");
        extra.put("calibration-samples", 6);
        extra.put("calibration-tokens", 48);
        extra.put("bits", 2);
        List<String> log = new ArrayList<>();
        TrainJob job = job(cluster.uri(""), "/runs/gptq", cluster.uri("/runs/a/data"), 1, extra);
        // The executor of chunk 0's first calibration task of layer 1 is lost after writing its partial Hessians,
        // and with it the chunk's hidden states it kept in memory: the retry must give the same quantized model.
        List<String> failed = failedTasksWhile(() -> train(job, "calibrationhalt:1:0", log));
        assertTrue(failed.size() == 1 && failed.get(0).contains("ExecutorLostFailure"), failed.toString());
        String all = String.join("\n", log);
        assertTrue(all.contains("GPTQ 2-bit, group size 32, calibration 6 x 48 tokens from the training data"), all);
        assertTrue(all.contains("in 2 chunk(s), inverse-Hessian solves on the cpu"), all); // --device cpu: not the fake GPUs
        java.util.regex.Matcher memory = java.util.regex.Pattern.compile("MEMORY=(\\d+)").matcher(all);
        assertTrue(memory.find() && Integer.parseInt(memory.group(1)) > 0, "executors reused hidden states: " + all);
        assertFalse(cluster.fs().exists(new org.apache.hadoop.fs.Path("/runs/gptq/"
                + org.qalora.driver.pipeline.ModelStage.GPTQ_WORK_DIR)), "the calibration work directory is gone");

        // Single process, same windows (the sampler is seeded), on a local copy of the model.
        var conf = spark.sparkContext().hadoopConfiguration();
        var drawn = org.qalora.driver.gptq.CalibrationSampler.fromDataset(cluster.uri("/runs/a/data"), conf, 6, 48, 7);
        Path calibration = base.resolve("gptq-calibration.safetensors");
        org.qalora.driver.gptq.CalibrationSampler.write(drawn, calibration.toString(),
                org.qalora.quant.io.HadoopPaths.defaults());
        org.qalora.quant.config.GptqConfig gptq = org.qalora.quant.config.GptqConfig.of(2, 32);
        Map<String, org.qalora.quant.QuantizedMatrix> single;
        try (var source = org.qalora.quant.safetensors.Checkpoint.open(Fixtures.tinyLlama().toString());
             var backend = new org.qalora.worker.backend.CpuBackend(2)) {
            var data = org.qalora.worker.quantize.CalibrationData.read(calibration.toString(), 512,
                    org.qalora.quant.io.HadoopPaths.defaults());
            single = org.qalora.worker.quantize.ModelQuantizer.quantize(source, source.config(), gptq,
                    org.qalora.worker.quantize.ModelQuantizer.Method.GPTQ, data, backend,
                    new java.io.PrintWriter(new java.io.StringWriter()));
        }
        try (var distributed = org.qalora.quant.safetensors.Checkpoint.open(cluster.uri("/runs/gptq/base-quantized"),
                new org.qalora.quant.io.HadoopPaths(conf))) {
            assertEquals(14, single.size());
            for (var e : single.entrySet()) {
                // Both through the checkpoint format (fp16 scales), as the distributed one was written.
                var writer = new org.qalora.quant.safetensors.SafetensorsWriter();
                org.qalora.quant.gptq.GptqCodec.write(writer, e.getKey(), e.getValue(), gptq.format());
                for (String suffix : List.of(".qweight", ".qzeros", ".scales", ".g_idx")) {
                    assertTrue(java.util.Arrays.equals(writer.bytes(e.getKey() + suffix),
                            distributed.bytes(e.getKey() + suffix)), e.getKey() + suffix + " differs");
                }
            }
        }
    }
}
