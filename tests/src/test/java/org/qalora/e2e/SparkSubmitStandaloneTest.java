package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import com.fasterxml.jackson.databind.JsonNode;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.output.ModelPublisher;

/**
 * The spark-submit path, for real: {@code deploy/spark-submit-standalone.sh} itself submits the built application jar
 * (driver/target/driver-*.jar, the jars of driver/target/lib that Spark lacks) to a Spark standalone cluster of real
 * processes: a Master and a Worker JVM, started from a {@link SparkDistribution} that holds Spark's jars and none of
 * ours. The Worker finds two fake GPUs through deploy/gpu-discovery.sh (a fake nvidia-smi on its PATH); the script asks
 * one GPU per executor and per task, so the executors are scheduled through the discovered addresses. The job trains
 * the fixture model on MiniDFS on CPU and publishes it. A missing jar, a wrong classpath, a wrong class name or a
 * setting Spark refuses in the scripts or conf files fails here as it would on a user's cluster.
 *
 * <p>It needs the packaged jars: it runs in {@code mvn verify} (this module's tests run after the driver's package
 * phase). The temporary directory (daemon logs, the Worker's executor stderr, the submit's output) is kept when the
 * test fails.
 */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class SparkSubmitStandaloneTest {
    private static final Path ROOT = Path.of(System.getProperty("qalora.root", "..")).toAbsolutePath();
    private static final int SLOTS = 2;
    /** Given through EXECUTOR_JAVA_OPTIONS: it must reach the executors' JVMs (a property nothing reads). */
    private static final String EXECUTOR_OPTION = "-Dqalora.test.executorOption=from-EXECUTOR_JAVA_OPTIONS";

    @TempDir(cleanup = CleanupMode.ON_SUCCESS)
    Path base;

    @Test
    void theStandaloneScriptTrainsOnMiniDfsWithExecutorsOnTheWorkerAndPublishes() throws Exception {
        checkPackaged();
        try (TestCluster hdfs = new TestCluster(base)) {
            hdfs.putTinyTrainingInputs();
            // Under target/, not the temporary directory: its jars are links to the local Maven repository.
            SparkDistribution spark = SparkDistribution.create(Path.of("target", "standalone-spark-home"), ROOT);
            // Two cores, two GPUs: room for the script's SLOTS executors of EXECUTOR_CORES=1 and one GPU each.
            try (StandaloneCluster cluster = StandaloneCluster.start(spark, base.resolve("standalone"),
                    ROOT.resolve("deploy/gpu-discovery.sh"), SLOTS, SLOTS, "3g")) {
                String output = hdfs.uri("/runs/submitted");
                Path log = base.resolve("spark-submit.log");
                long t0 = System.nanoTime();
                int status = submit(spark, cluster, log, List.of("--model", hdfs.uri("/models/tiny-gptq"),
                        "--tokenizer", hdfs.uri("/tok/tokenizer.json"), "--data", hdfs.uri("/data/alpaca.json"),
                        "--output", output, "--rounds", "2", "--steps-per-round", "1", "--batch-size", "4",
                        "--micro-batch-tokens", "256", "--seed", "7", "--device", "cpu",
                        "--conf", "spark.hadoop.dfs.replication=1"));
                System.out.printf("SparkSubmitStandaloneTest: spark-submit ran %.1f s%n", (System.nanoTime() - t0) / 1e9);
                String submitted = Files.readString(log);
                assertEquals(0, status, "spark-submit failed; kept in " + base + "\n" + tail(submitted));

                Storage storage = new Storage(new Configuration());
                ModelPublisher publisher = new ModelPublisher(storage);
                org.apache.hadoop.fs.Path version = publisher.latest(storage.path(output)).orElseThrow(
                        () -> new AssertionError("LATEST names no published version under " + output));
                assertEquals(List.of(), publisher.verify(version).stream().toList(), "the published files");
                java.util.Set<String> files = publisher.manifest(version).files().keySet();
                assertTrue(files.containsAll(List.of("adapter/adapter_model.safetensors", "adapter/adapter_config.json",
                        "config.json")), version + " holds " + files);
                assertTrue(submitted.contains("qalora: done: merged quantized model in " + version), tail(submitted));
                checkExecutorsRanOnTheWorker(cluster, hdfs, output);
            }
        }
    }

    /** Runs the deploy script as a user would, with this Spark installation and master; returns its exit status. */
    private static int submit(SparkDistribution spark, StandaloneCluster cluster, Path log, List<String> trainArgs)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("bash", ROOT.resolve("deploy/spark-submit-standalone.sh").toString()));
        cmd.addAll(trainArgs);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(log.getParent().toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        Map<String, String> env = pb.environment();
        env.put("SPARK_HOME", spark.home().toString());
        env.put("JAVA_HOME", System.getProperty("java.home"));
        env.put("SPARK_MASTER", cluster.masterUrl());
        env.put("SLOTS", Integer.toString(SLOTS));
        env.put("EXECUTOR_CORES", "1");
        env.put("EXECUTOR_MEMORY", "1g");
        env.put("EXECUTOR_JAVA_OPTIONS", EXECUTOR_OPTION);
        Process p = pb.start();
        try {
            if (!p.waitFor(3, TimeUnit.MINUTES)) {
                throw new AssertionError("spark-submit did not finish in 3 minutes; kept in " + log.getParent());
            }
            return p.exitValue();
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
    }

    /**
     * Each of the SLOTS executors ran on the Worker, launched with EXECUTOR_JAVA_OPTIONS (the command heads its
     * stderr): its work directory there holds the executor's stderr, the
     * application jars it fetched (ours: the app jar, our modules, picocli, DJL; none of Spark's own, which the installation
     * has), and the resources file with the GPU address the Worker gave it from the discovery script. Every round's
     * slots ran on those executors (metrics.jsonl records each slot's executor id).
     */
    private static void checkExecutorsRanOnTheWorker(StandaloneCluster cluster, TestCluster hdfs, String output)
            throws IOException {
        List<Path> executors;
        try (Stream<Path> dirs = Files.walk(cluster.workerWorkDir(), 2)) {
            executors = dirs.filter(d -> d.getNameCount() == cluster.workerWorkDir().getNameCount() + 2
                    && Files.isRegularFile(d.resolve("stderr"))).sorted().toList();
        }
        assertEquals(SLOTS, executors.size(), "executor directories in " + cluster.workerWorkDir() + ": " + executors
                + "; worker log " + cluster.workerLog());
        List<String> addresses = new ArrayList<>();
        List<String> executorIds = new ArrayList<>();
        for (Path executor : executors) {
            executorIds.add(executor.getFileName().toString());
            List<String> fetched;
            try (Stream<Path> files = Files.list(executor)) {
                fetched = files.map(f -> f.getFileName().toString()).sorted().toList();
            }
            for (String ours : List.of("driver-", "worker-", "datasets-", "quant-kernels-", "picocli-", "tokenizers-")) {
                assertTrue(fetched.stream().anyMatch(f -> f.startsWith(ours) && f.endsWith(".jar")),
                        executor + " did not fetch " + ours + "*.jar: " + fetched);
            }
            for (String sparks : List.of("spark-core", "netty-", "jackson-databind", "scala-library", "hadoop-client")) {
                assertTrue(fetched.stream().noneMatch(f -> f.startsWith(sparks)),
                        executor + " fetched a jar the Spark installation has (" + sparks + "): " + fetched);
            }
            String stderr = Files.readString(executor.resolve("stderr"));   // starts with the Worker's launch command
            assertTrue(stderr.contains(EXECUTOR_OPTION), executor + " was not launched with EXECUTOR_JAVA_OPTIONS ("
                    + EXECUTOR_OPTION + "): " + stderr.lines().limit(3).toList());
            for (String f : fetched.stream().filter(f -> f.startsWith("resource-executor")).toList()) {
                String json = Files.readString(executor.resolve(f));
                Matcher m = Pattern.compile("\"addresses\"\\s*:\\s*\\[\\s*\"(\\d+)\"").matcher(json);
                assertTrue(m.find(), f + ": " + json);
                addresses.add(m.group(1));
            }
        }
        assertEquals(List.of("0", "1"), addresses.stream().sorted().toList(),
                "each executor got its own GPU address from deploy/gpu-discovery.sh");
        RunOutput run = new RunOutput(hdfs.fs(), output);
        List<JsonNode> rounds = RunOutput.withoutTimings(hdfs.fs().open(new org.apache.hadoop.fs.Path(output,
                "checkpoints/metrics.jsonl")).readAllBytes());
        assertEquals(List.of(1, 2), run.metricsRounds(), "rounds in metrics.jsonl");
        for (JsonNode round : rounds) {
            for (JsonNode device : round.get("slotDevices")) {
                String executorId = device.asText().substring(0, device.asText().indexOf('/'));
                assertTrue(executorIds.contains(executorId), "round " + round.get("round") + " ran a slot on "
                        + device.asText() + ", not on the Worker's executors " + executorIds);
            }
        }
    }

    /** The jars the deploy scripts ship must be this build's, not a stale package from an earlier one. */
    private static void checkPackaged() throws IOException {
        Path target = ROOT.resolve("driver/target");
        Path jar;
        try (Stream<Path> jars = Files.list(target)) {
            jar = jars.filter(p -> p.getFileName().toString().matches("driver-.*\\d(-SNAPSHOT)?\\.jar")).findFirst()
                    .orElseThrow(() -> new AssertionError("no driver/target/driver-*.jar: this test needs the packaged "
                            + "application (mvn verify, or mvn -DskipTests package -pl driver -am first)"));
        }
        Instant newestClass;
        try (Stream<Path> classes = Files.walk(target.resolve("classes"))) {
            newestClass = classes.filter(Files::isRegularFile).map(p -> {
                try {
                    return Files.getLastModifiedTime(p).toInstant();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }).max(Instant::compareTo).orElse(Instant.EPOCH);
        }
        assertTrue(!Files.getLastModifiedTime(jar).toInstant().isBefore(newestClass) && Files.isDirectory(target.resolve("lib")),
                jar + " is older than driver/target/classes: package again (mvn verify)");
    }

    private static String tail(String text) {
        String[] lines = text.split("\n");
        return String.join("\n", java.util.Arrays.copyOfRange(lines, Math.max(0, lines.length - 60), lines.length));
    }
}
