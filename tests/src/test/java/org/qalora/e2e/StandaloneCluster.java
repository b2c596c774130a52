package org.qalora.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Spark standalone cluster on this machine: a Master and one Worker, each its own JVM started from a
 * {@link SparkDistribution}'s jars as {@code sbin/start-master.sh} and {@code sbin/start-worker.sh} would (the same
 * main classes and arguments), on free ports, under {@code dir} (their logs, the Worker's work directory with one
 * folder per application and executor). The Worker finds its GPUs with the script it is given (the project's
 * deploy/gpu-discovery.sh), here fed a fake {@code nvidia-smi} on its PATH that lists {@code gpus} GPUs. Closing kills
 * both JVMs and, with the Worker, the executors it started.
 */
final class StandaloneCluster implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofMinutes(1);
    private static final Pattern MASTER_URL = Pattern.compile("Starting Spark master at (spark://\\S+)");

    private final List<Process> daemons = new ArrayList<>();
    private final Path dir;
    private String masterUrl;

    private StandaloneCluster(Path dir) {
        this.dir = dir;
    }

    /** The Master's URL, {@code spark://127.0.0.1:PORT}. */
    String masterUrl() { return masterUrl; }

    /** The Worker's work directory: {@code <app-id>/<executor-id>/stderr} for every executor it ran. */
    Path workerWorkDir() { return dir.resolve("worker-work"); }

    Path masterLog() { return dir.resolve("master.log"); }

    Path workerLog() { return dir.resolve("worker.log"); }

    static StandaloneCluster start(SparkDistribution spark, Path dir, Path discoveryScript, int gpus,
                                   int cores, String memory) throws IOException, InterruptedException {
        Files.createDirectories(dir);
        StandaloneCluster cluster = new StandaloneCluster(dir);
        try {
            // Port 0: the Master binds a free port and logs its URL; its web UI takes a free port too.
            Process master = cluster.daemon(spark, "org.apache.spark.deploy.master.Master", List.of(),
                    List.of("--host", "127.0.0.1", "--port", "0", "--webui-port", "0"), Map.of(), cluster.masterLog());
            Matcher url = cluster.awaitLog(master, cluster.masterLog(), MASTER_URL, "the Master's URL");
            cluster.masterUrl = url.group(1);

            Path fakeBin = Files.createDirectories(dir.resolve("fake-bin"));
            Path nvidiaSmi = fakeBin.resolve("nvidia-smi");
            StringBuilder indices = new StringBuilder();
            for (int i = 0; i < gpus; i++) {
                indices.append(i).append("\\n");
            }
            // What `nvidia-smi --query-gpu=index --format=csv,noheader` prints: one index a line.
            Files.writeString(nvidiaSmi, """
                    #!/usr/bin/env bash
                    [[ "$*" == *--query-gpu=index* ]] || { echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 1; }
                    printf '%s'
                    """.formatted(indices));
            Files.setPosixFilePermissions(nvidiaSmi, PosixFilePermissions.fromString("rwxr-xr-x"));
            Process worker = cluster.daemon(spark, "org.apache.spark.deploy.worker.Worker",
                    List.of("-Dspark.worker.resource.gpu.amount=" + gpus,
                            "-Dspark.worker.resource.gpu.discoveryScript=" + discoveryScript.toAbsolutePath()),
                    List.of("--host", "127.0.0.1", "--port", "0", "--webui-port", "0", "--cores", Integer.toString(cores),
                            "--memory", memory, "--work-dir", Files.createDirectories(cluster.workerWorkDir()).toString(),
                            cluster.masterUrl),
                    Map.of("PATH", fakeBin + ":" + System.getenv("PATH")), cluster.workerLog());
            cluster.awaitLog(worker, cluster.workerLog(), Pattern.compile("Successfully registered with master"),
                    "the Worker's registration");
            return cluster;
        } catch (IOException | InterruptedException | RuntimeException | Error e) {
            cluster.close();
            throw e;
        }
    }

    private Process daemon(SparkDistribution spark, String mainClass, List<String> properties, List<String> args,
                           Map<String, String> env, Path log) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(Arrays.asList(System.getProperty("qalora.jvm.flags", "").trim().split("\\s+")));
        cmd.add("-Xmx256m");
        cmd.addAll(properties);
        cmd.addAll(List.of("-cp", spark.jars() + "/*", mainClass));
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        Map<String, String> environment = pb.environment();
        // The Worker builds each executor's command from SPARK_HOME (its jars/) and JAVA_HOME; a GPU restriction
        // inherited from this machine would bypass nvidia-smi in the discovery script.
        environment.put("SPARK_HOME", spark.home().toString());
        environment.put("JAVA_HOME", System.getProperty("java.home"));
        environment.put("SPARK_LOCAL_IP", "127.0.0.1");
        environment.remove("CUDA_VISIBLE_DEVICES");
        environment.remove("NVIDIA_VISIBLE_DEVICES");
        environment.putAll(env);
        Process p = pb.start();
        daemons.add(p);
        return p;
    }

    private Matcher awaitLog(Process p, Path log, Pattern marker, String what) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (true) {
            Matcher m = marker.matcher(Files.readString(log));
            if (m.find()) {
                return m;
            }
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("no " + what + (p.isAlive() ? " within " + START_TIMEOUT : ": the JVM exited")
                        + "; its log " + log + ":\n" + Files.readString(log));
            }
            Thread.sleep(100);
        }
    }

    /** Kills the Worker with the executor JVMs it started (its child processes), then the Master. */
    @Override
    public void close() throws InterruptedException {
        for (Process p : daemons.reversed()) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor(30, TimeUnit.SECONDS);
        }
    }
}
