package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.ExecutorLostFailure;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.merge.MergeJob;
import org.qalora.driver.shard.ShardJob;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.driver.pipeline.PublishStage;
import org.qalora.driver.pipeline.TrainPipeline;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.quant.testing.ShardedCopy;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.train.AdapterState;

/**
 * The merge job on real executor JVMs ({@code local-cluster[2,1,1024]}) and a real HDFS (MiniDFSCluster):
 * <ol>
 *   <li>an executor JVM halted in the middle of the merge (a shard task has written its file into its attempt
 *   directory, not yet renamed it) is replaced, the task retried, and the published model is byte-identical to the
 *   undisturbed publish: every file and the manifest;
 *   <li>{@code train} on the fixture GPTQ model stored as HF shards (index + 4 files) ends with the same adapter,
 *   bit for bit, and the same merged model files as on the single-file model; the merged model itself is sharded
 *   ({@code --max-shard-size 60KB}) with a valid index.
 * </ol>
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class MergeOnClusterTest {
    private static final long SMALL_SHARDS = 60_000;
    @TempDir
    static Path base;
    private static TestCluster cluster;
    private static SparkSession spark;

    @BeforeAll
    static void start() throws Exception {
        cluster = new TestCluster(base);
        cluster.putTinyTrainingInputs();
        cluster.put(ShardedCopy.of(Fixtures.tinyLlamaGptq(), base.resolve("sharded"), 50_000), "/models/tiny-gptq-sharded");
        spark = SparkSession.builder().config(cluster.sparkConf("MergeOnClusterTest")).getOrCreate();
    }

    @AfterAll
    static void stop() {
        TestCluster.stop(spark, cluster);
    }

    private static Storage storage() {
        return new Storage(spark.sparkContext().hadoopConfiguration());
    }

    /** Every file under {@code dir} (relative name -> bytes), optionally only the model's own files. */
    private static Map<String, byte[]> files(String dir, boolean modelOnly) throws IOException {
        FileSystem fs = cluster.fs();
        org.apache.hadoop.fs.Path root = new org.apache.hadoop.fs.Path(dir);
        Map<String, byte[]> out = new TreeMap<>();
        var it = fs.listFiles(root, true);
        String prefix = fs.makeQualified(root).toUri().getPath() + "/";
        while (it.hasNext()) {
            FileStatus st = it.next();
            String rel = st.getPath().toUri().getPath().substring(prefix.length());
            if (modelOnly && (rel.startsWith(PublishStage.ADAPTER_DIR + "/") || rel.equals(ModelPublisher.MANIFEST))) {
                continue;
            }
            try (var in = fs.open(st.getPath())) {
                out.put(rel, in.readAllBytes());
            }
        }
        return out;
    }

    private static void assertSameFiles(Map<String, byte[]> a, Map<String, byte[]> b) {
        assertEquals(a.keySet(), b.keySet());
        a.forEach((k, v) -> assertArrayEquals(v, b.get(k), k));
    }

    private static org.apache.hadoop.fs.Path publish(String root, String fault) throws IOException {
        PeftAdapter adapter = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
        LlamaDims dims = LlamaDims.of(org.qalora.quant.config.LlamaConfig.read(Fixtures.tinyLlamaGptq().toString()));
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        AdapterState s = AdapterState.fromWeights(dims, adapter.config(), adapter.weights(), 6);
        for (String k : s.keys()) {
            tensors.put(k, new AdapterTensors.Tensor(s.shape(k), s.weights(k), s.adamM(k), s.adamV(k)));
        }
        Storage storage = storage();
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        MergeJob merge = new MergeJob(new ShardJob(jsc, storage, FaultPlan.parse(fault), 1, line -> {}), "cpu",
                line -> {});
        // The state as a run commits it (the publish stage streams it from its files, never from memory).
        CheckpointStore.Committed committed = new CheckpointStore(storage, storage.path(cluster.uri(root + "-checkpoints")),
                line -> {}).commit(3, new AdapterTensors(tensors, 6), "plan", "hash", null);
        return new PublishStage(storage, HoldPoint.none(), merge, SMALL_SHARDS, line -> {}).publish(
                storage.path(cluster.uri(root)), cluster.uri("/models/tiny-gptq"), adapter.config(), committed, "hash",
                Map.of());
    }

    @Test
    @Order(1)
    void anExecutorLostDuringTheMergeChangesNothingInThePublishedModel() throws IOException {
        org.apache.hadoop.fs.Path clean = publish("/pub/clean", null);
        AtomicInteger lost = new AtomicInteger();
        SparkListener listener = new SparkListener() {
            @Override
            public void onTaskEnd(SparkListenerTaskEnd end) {
                if (end.reason() instanceof ExecutorLostFailure) {
                    lost.incrementAndGet();
                }
            }
        };
        spark.sparkContext().addSparkListener(listener);
        org.apache.hadoop.fs.Path halted;
        try {
            halted = publish("/pub/halted", "mergehalt:1");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20); // listener events arrive asynchronously
            while (lost.get() == 0 && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
        } finally {
            spark.sparkContext().removeSparkListener(listener);
        }
        assertEquals(1, lost.get(), "the merge task's executor was lost once and the task retried");
        Map<String, byte[]> a = files(clean.toString(), false), b = files(halted.toString(), false);
        assertTrue(a.containsKey(Checkpoint.INDEX_FILE)
                && a.keySet().stream().anyMatch(n -> n.startsWith("model-00001-of-")), a.keySet().toString());
        assertFalse(a.keySet().stream().anyMatch(n -> n.startsWith("_attempts")), a.keySet().toString());
        assertSameFiles(a, b); // manifest included: same files, same checksums
        assertTrue(new ModelPublisher(storage()).verify(halted).isEmpty(), "checksums match");
    }

    private static TrainJob job(String model, String output, String data) {
        Map<String, Object> flags = new LinkedHashMap<>();
        flags.put("model", cluster.uri(model));
        flags.put("tokenizer", cluster.uri("/tok/tokenizer.json"));
        flags.put("data", List.of(data));
        flags.put("output", cluster.uri(output));
        flags.put("rounds", 2);
        flags.put("steps-per-round", 2);
        flags.put("slots", 2);
        flags.put("batch-size", 8);
        flags.put("micro-batch-tokens", 256);
        flags.put("seed", 7);
        flags.put("device", "cpu");
        flags.put("max-shard-size", "60KB");
        return TrainJobLoader.build("test", TrainJobLoader.defaults(Fixtures.root().getParent().toString()), flags);
    }

    private static AdapterTensors finalAdapter(String output) {
        Storage storage = storage();
        CheckpointStore store = new CheckpointStore(storage, storage.path(cluster.uri(output + "/checkpoints")), s -> {});
        return store.loadState(store.latestCommitted().orElseThrow());
    }

    @Test
    @Order(2)
    void aShardedBaseTrainsAndMergesAsTheSingleFileBase() throws IOException {
        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome single = new TrainPipeline(Fixtures.root().getParent(), log::add).run(
                job("/models/tiny-gptq", "/runs/single", cluster.uri("/data/alpaca.json")), spark);
        TrainPipeline.Outcome sharded = new TrainPipeline(Fixtures.root().getParent(), log::add).run(
                job("/models/tiny-gptq-sharded", "/runs/sharded", cluster.uri("/runs/single/data")), spark);
        assertTrue(finalAdapter("/runs/single").bitwiseEquals(finalAdapter("/runs/sharded")), String.join("\n", log));
        assertEquals(single.published().getName(), sharded.published().getName(), "named by the same final state");
        Map<String, byte[]> a = files(single.published().toString(), true);
        assertTrue(a.containsKey(Checkpoint.INDEX_FILE), "the merged model is sharded: " + a.keySet());
        assertSameFiles(a, files(sharded.published().toString(), true));
        assertTrue(log.stream().anyMatch(l -> l.startsWith("merge: ") && l.contains("shard task(s)")), String.join("\n", log));
    }
}
