package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.plan.PlanSettings;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.driver.merge.MergeJob;
import org.qalora.driver.shard.ShardJob;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.train.AdapterState;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;

/**
 * The trainer factory (what executors run) and the publish stage read and write through the job's Hadoop
 * configuration, never this JVM's defaults: a MiniDFSCluster reachable only as the HA-style logical nameservice
 * {@code hdfs://qalora-ns/}, which only the job's configuration defines (as {@code spark.hadoop.dfs.*} would).
 * FileSystem caching is off for hdfs, so an instance made with the job's configuration cannot be picked up by a
 * lookup with the defaults (that would hide a path that ignores the job's configuration).
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class JobHadoopConfTest {
    static final String NS = "hdfs://qalora-ns";

    @TempDir
    static Path dir;
    private static MiniDFSCluster hdfs;
    private static Configuration job;
    private static String dataset;

    @BeforeAll
    static void start() throws Exception {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, dir.resolve("hdfs").toString());
        conf.setInt("dfs.replication", 1);
        hdfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        hdfs.waitActive();
        job = nameserviceOnly(hdfs.getNameNodePort());
        FileSystem fs = new org.apache.hadoop.fs.Path(NS + "/").getFileSystem(job);
        fs.copyFromLocalFile(false, true, new org.apache.hadoop.fs.Path(Fixtures.tinyLlamaGptq().toUri()),
                new org.apache.hadoop.fs.Path(NS + "/models/tiny-gptq"));
        dataset = HandWrittenDataset.write(dir);
    }

    @AfterAll
    static void stop() {
        if (hdfs != null) {
            hdfs.shutdown(true);
        }
    }

    /** A job configuration that alone knows how to reach the cluster: the logical nameservice qalora-ns. */
    static Configuration nameserviceOnly(int port) {
        Configuration c = new Configuration();
        c.set("dfs.nameservices", "qalora-ns");
        c.set("dfs.ha.namenodes.qalora-ns", "nn1");
        c.set("dfs.namenode.rpc-address.qalora-ns.nn1", "localhost:" + port);
        c.set("dfs.client.failover.proxy.provider.qalora-ns",
                "org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider");
        c.setBoolean("fs.hdfs.impl.disable.cache", true);
        return c;
    }

    @Test
    void theDefaultConfigurationCannotReachTheNameservice() {
        assertThrows(Exception.class, () -> HadoopPaths.defaults().exists(NS + "/models/tiny-gptq"));
    }

    @Test
    void theTrainerFactoryLoadsTheModelThroughTheShippedConfiguration() throws Exception {
        WorkerTrainerFactory f = new WorkerTrainerFactory(NS + "/models/tiny-gptq", dataset, null,
                new PlanSettings(42L, 2, 2, 2, 0, 256), QaloraConfig.allProjections(4, 8.0, 32,
                Pooling.MEAN, 0.0), null, 4, 1, new ShippedHadoopConf(job),
                "cpu", null, false);
        WorkerTrainerFactory.Trainer t = (WorkerTrainerFactory.Trainer) f.open("cpu");
        assertEquals(NS + "/models/tiny-gptq", t.base.source());
        t.base.backend().close();
        AdapterTensors initial = f.initialState(3);
        assertTrue(initial.keys().size() > 0);
    }

    @Test
    void publishMergesAndWritesThroughTheJobConfiguration() throws Exception {
        PeftAdapter adapter = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
        AdapterTensors state;
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel local = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
            state = WorkerTrainerFactory.toTensors(
                    AdapterState.fromWeights(local.dims(), adapter.config(), adapter.weights(), 6));
        }
        Storage storage = new Storage(job);
        org.apache.hadoop.fs.Path root = storage.path(NS + "/runs/out");
        org.apache.hadoop.fs.Path published;
        CheckpointStore.Committed committed;
        // The merge runs as Spark tasks; they reach HDFS through the configuration shipped with them (the context's
        // own Hadoop configuration does not know the nameservice).
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2]", "JobHadoopConfTest").set("spark.ui.enabled", "false");
        try (JavaSparkContext jsc = new JavaSparkContext(conf)) {
            MergeJob merge = new MergeJob(new ShardJob(jsc, storage, FaultPlan.none(), 1, s -> {}), "cpu", s -> {});
            committed = new CheckpointStore(storage, storage.path(NS + "/runs/checkpoints"), s -> {})
                    .commit(3, state, "plan", "hash", null);
            published = new PublishStage(storage, HoldPoint.none(), merge, 5_000_000_000L, s -> {}).publish(root,
                    NS + "/models/tiny-gptq", adapter.config(), committed, "hash", Map.of());
        }
        assertEquals("v-r00003-" + committed.stateId().substring(0, 8), published.getName(),
                "named by round and state checksum, no clock");
        assertEquals(published.getName(), storage.readString(new org.apache.hadoop.fs.Path(root, ModelPublisher.LATEST)).trim());
        assertTrue(new ModelPublisher(storage).verify(published).isEmpty(), "checksums match");
        HadoopPaths paths = new HadoopPaths(job);
        PeftAdapter back = PeftAdapter.read(HadoopPaths.child(published.toString(), PublishStage.ADAPTER_DIR), paths);
        for (String k : adapter.weights().keySet()) {
            assertArrayEquals(adapter.weights().get(k), back.weights().get(k), 0f, k);
        }
        try (CpuBackend be = new CpuBackend(1)) {
            assertEquals(14, LlamaModel.load(published.toString(), be, paths).quantizedMatrices().size());
        }
        assertTrue(new String(paths.readAllBytes(HadoopPaths.child(published.toString(), "config.json")),
                StandardCharsets.UTF_8).contains("qalora_float_zeros"));
    }
}
