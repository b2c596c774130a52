package org.qalora.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.quant.testing.Fixtures;

/**
 * One MiniDFSCluster (a real HDFS: NameNode + DataNode in this JVM) and the Spark settings for
 * {@code local-cluster[2,1,1024]}: two standalone workers whose executors are separate JVMs, each with a fake GPU
 * (a discovery script hands out addresses 0 and 1 through atomic mkdir). Shared by a test class; the comments
 * here and in tests/pom.xml (SPARK_HOME, SPARK_SCALA_VERSION, SPARK_LOCAL_IP) say why each setting is needed.
 */
final class TestCluster implements AutoCloseable {
    /** A logical HDFS nameservice that only the Spark job's settings define (see {@link #sparkConf}). */
    static final String NAMESERVICE = "qalora-ns";
    final MiniDFSCluster hdfs;
    final Path base;

    TestCluster(Path base) throws IOException {
        this.base = base;
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.resolve("hdfs").toString());
        conf.setInt("dfs.replication", 1);
        this.hdfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        hdfs.waitActive();
    }

    /** The hdfs:// URI of {@code path} on the mini cluster. */
    String uri(String path) {
        return hdfs.getURI().toString() + path;
    }

    FileSystem fs() throws IOException {
        return hdfs.getFileSystem();
    }

    /** Copies a local directory or file onto HDFS at {@code target}. */
    void put(Path local, String target) throws IOException {
        fs().copyFromLocalFile(false, true, new org.apache.hadoop.fs.Path(local.toUri()),
                new org.apache.hadoop.fs.Path(uri(target)));
    }

    /**
     * The inputs of a tiny training run, at the paths the training tests use: the fixture GPTQ model at
     * {@code /models/tiny-gptq}, a tokenizer cut to its 512-id vocabulary at {@code /tok}, and the bundled Alpaca
     * sample at {@code /data/alpaca.json}.
     */
    void putTinyTrainingInputs() throws IOException {
        put(Fixtures.tinyLlamaGptq(), "/models/tiny-gptq");
        Path tok = base.resolve("tok/tokenizer.json");
        SmallTokenizer.write(Fixtures.tokenizer(), 512, tok);
        Files.copy(Fixtures.tokenizer().resolveSibling("tokenizer_config.json"), tok.resolveSibling("tokenizer_config.json"));
        put(tok.getParent(), "/tok");
        put(Fixtures.root().resolveSibling("samples").resolve("alpaca-sample.json"), "/data/alpaca.json");
    }

    /** Spark settings for local-cluster with fake GPUs, one core per executor. */
    SparkConf sparkConf(String appName) throws IOException {
        return sparkConf(appName, 1);
    }

    /**
     * Spark settings for local-cluster with fake GPUs and {@code cores} cores per executor, all of them taken by a
     * task ({@code spark.task.cpus} = {@code spark.executor.cores}), as the Helm chart and the deploy scripts run
     * the training: one task per executor and its GPU.
     */
    SparkConf sparkConf(String appName, int cores) throws IOException {
        Path sparkHome = Path.of(System.getProperty("qalora.spark.home", "target/spark-home"));
        Files.createDirectories(sparkHome.resolve("jars"));
        Path gpuDir = Files.createDirectories(base.resolve("gpus-" + System.nanoTime()));
        Path script = base.resolve("discover-gpu-" + System.nanoTime() + ".sh");
        // Each worker runs the script once; mkdir is atomic, so the two workers get different addresses.
        Files.writeString(script, """
                #!/usr/bin/env bash
                for i in 0 1 2 3 4 5 6 7; do
                  if mkdir "%s/gpu$i" 2>/dev/null; then echo "{\\"name\\":\\"gpu\\",\\"addresses\\":[\\"$i\\"]}"; exit 0; fi
                done
                echo '{"name":"gpu","addresses":[]}'
                """.formatted(gpuDir));
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local-cluster[2," + cores + ",1024]", appName);
        if (cores > 1) {
            conf.set("spark.executor.cores", Integer.toString(cores));
            conf.set("spark.task.cpus", Integer.toString(cores));
        }
        // Executors need the test classpath (surefire.test.class.path: java.class.path is surefire's booter jar);
        // without it they die at start and Spark relaunches them forever: the test classes that use this carry a @Timeout.
        conf.set("spark.executor.extraClassPath", System.getProperty("surefire.test.class.path"));
        // Kryo and the Vector API need the test JVM's --add-opens/--add-modules flags in the executors too.
        conf.set("spark.executor.extraJavaOptions", System.getProperty("qalora.jvm.flags", ""));
        conf.set("spark.driver.host", "127.0.0.1");
        conf.set("spark.ui.enabled", "false");
        conf.set("spark.worker.resource.gpu.amount", "1");
        conf.set("spark.worker.resource.gpu.discoveryScript", script.toString());
        conf.set("spark.executor.resource.gpu.amount", "1");
        conf.set("spark.task.resource.gpu.amount", "1");
        conf.set("spark.hadoop.fs.defaultFS", hdfs.getURI().toString());
        // The same NameNode as the HA-style logical nameservice hdfs://qalora-ns/, defined only here: a path that
        // reads or writes it through a bare new Configuration() instead of the job's fails (UnknownHostException).
        conf.set("spark.hadoop.dfs.nameservices", NAMESERVICE);
        conf.set("spark.hadoop.dfs.ha.namenodes." + NAMESERVICE, "nn1");
        conf.set("spark.hadoop.dfs.namenode.rpc-address." + NAMESERVICE + ".nn1", "localhost:" + hdfs.getNameNodePort());
        conf.set("spark.hadoop.dfs.client.failover.proxy.provider." + NAMESERVICE,
                "org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider");
        return conf;
    }

    static JavaSparkContext start(SparkConf conf) {
        return new JavaSparkContext(conf);
    }

    /** A test class's teardown: stops its session (when it started one), then the cluster (when there is one). */
    static void stop(org.apache.spark.sql.SparkSession spark, TestCluster cluster) {
        if (spark != null) {
            spark.stop();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    @Override
    public void close() {
        hdfs.shutdown(true);
        // Hadoop caches one client per scheme and authority, whatever the configuration: a later test class whose
        // own cluster serves the same logical nameservice (hdfs://qalora-ns) would get this dead NameNode's client
        // (seen as "Connection refused" to the old port when EvalOnClusterTest ran after TrainOnClusterTest).
        try {
            FileSystem.closeAll();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

}
