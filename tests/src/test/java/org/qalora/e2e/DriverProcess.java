package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;

/**
 * {@code qalora train} as its own driver JVM, started the way {@code bin/qalora} starts it (the same main class and
 * JVM flags; the test classpath stands in for {@code driver/target/lib}), so that a test can SIGKILL the real
 * process at a chosen moment and start a fresh one on the same output, as a crashed and restarted driver pod would.
 *
 * <p>Moments are found from markers, never from elapsed time: a line the driver prints ({@link #awaitLine}) or a
 * file it creates in the run directory ({@link #await}). Every line of output is kept in memory and in a log file
 * that assertion messages point at.
 */
final class DriverProcess implements AutoCloseable {
    /** The exit status of a JVM ended by SIGKILL (128 + 9): proves the kill, not a normal exit, ended it. */
    static final int SIGKILL_STATUS = 137;
    private static final Duration START_TIMEOUT = Duration.ofMinutes(3);

    private final Process process;
    private final Path log;
    private final List<String> lines = new ArrayList<>();
    private final Thread reader;

    private DriverProcess(Process process, Path log) throws IOException {
        this.process = process;
        this.log = log;
        long started = System.nanoTime();
        PrintWriter file = new PrintWriter(Files.newBufferedWriter(log, StandardCharsets.UTF_8), true);
        // One thread drains stdout+stderr (a full pipe would block the driver) into memory and the log file.
        this.reader = Thread.ofPlatform().daemon().name("driver-output-" + process.pid()).start(() -> {
            try (file; BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) {
                    // The log file carries the time since start, to see where a run spends it.
                    file.printf("[%7.3f s] %s%n", (System.nanoTime() - started) / 1e9, line);
                    synchronized (lines) {
                        lines.add(line);
                        lines.notifyAll();
                    }
                }
            } catch (IOException e) {
                synchronized (lines) {
                    lines.add("(test) reading the driver's output failed: " + e);
                }
            }
            synchronized (lines) {
                lines.notifyAll(); // end of output: waiters re-check and see the process gone
            }
        });
    }

    /**
     * Starts {@code qalora train ARGS} in {@code workDir} (Spark's scratch files land there), logging to {@code log}.
     */
    static DriverProcess train(Path workDir, Path log, List<String> args) throws IOException {
        return train(workDir, log, List.of("-Xmx1g"), args);
    }

    /** As above, with {@code jvmOptions} (the heap cap, a GC log) instead of {@code -Xmx1g}. */
    static DriverProcess train(Path workDir, Path log, List<String> jvmOptions, List<String> args) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        // bin/qalora's flags (Kryo's --add-opens, the Vector API, native access): pom.xml passes the same list.
        cmd.addAll(Arrays.asList(System.getProperty("qalora.jvm.flags", "").trim().split("\\s+")));
        cmd.addAll(jvmOptions);
        // Spark's scratch directories go to java.io.tmpdir, and a SIGKILL skips the hook that deletes them.
        cmd.add("-Djava.io.tmpdir=" + workDir);
        cmd.add("-Dqalora.root=" + System.getProperty("qalora.root"));
        cmd.add("-cp");
        // Surefire's own java.class.path is its booter jar; this is the module's test classpath (driver included).
        cmd.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        cmd.add("org.qalora.driver.cli.QaloraCli");
        cmd.add("train");
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(workDir.toFile()).redirectErrorStream(true);
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        return new DriverProcess(pb.start(), log);
    }

    long pid() { return process.pid(); }

    Path log() { return log; }

    boolean isAlive() { return process.isAlive(); }

    /** The lines printed so far. */
    List<String> lines() {
        synchronized (lines) {
            return List.copyOf(lines);
        }
    }

    /** Waits for a line matching {@code marker}; fails if the driver exits first or nothing comes in time. */
    String awaitLine(Predicate<String> marker, String what) throws InterruptedException {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        int seen = 0;
        synchronized (lines) {
            while (true) {
                for (; seen < lines.size(); seen++) {
                    if (marker.test(lines.get(seen))) {
                        return lines.get(seen);
                    }
                }
                long left = deadline - System.nanoTime();
                if (!process.isAlive() && !reader.isAlive()) {
                    throw new AssertionError("the driver exited (status " + process.exitValue() + ") before " + what
                            + "; its output: " + log + "\n" + tail());
                }
                if (left <= 0) {
                    throw new AssertionError("no " + what + " within " + START_TIMEOUT + "; output: " + log);
                }
                lines.wait(Math.min(TimeUnit.NANOSECONDS.toMillis(left) + 1, 200));
            }
        }
    }

    /**
     * Waits until {@code condition} (a look at the run directory) holds, checking every 10 ms; fails if the driver
     * exits first. The check is the synchronization; the pause between checks only bounds the polling cost (each
     * look is a NameNode call, and the NameNode shares the 2 cores with the driver). The windows the markers open
     * last hundreds of milliseconds (a slot's training, writing the merged model), so 10 ms loses none.
     */
    void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (!process.isAlive()) {
                throw new AssertionError("the driver exited (status " + process.exitValue() + ") before " + what
                        + "; its output: " + log + "\n" + tail());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no " + what + " within " + START_TIMEOUT + "; output: " + log);
            }
            Thread.sleep(10);
        }
    }

    /**
     * SIGKILL (no shutdown hooks, no finally blocks, open files left as they are), then waits until the JVM is
     * gone. In local mode the executors are threads of this JVM, so they die with it mid-task.
     */
    void kill() throws InterruptedException {
        process.destroyForcibly(); // SIGKILL on Unix
        assertTrue(process.waitFor(1, TimeUnit.MINUTES), "the killed driver " + pid() + " is still running");
        assertEquals(SIGKILL_STATUS, process.exitValue(), "the driver ended by SIGKILL, not on its own; output: " + log);
        reader.join(TimeUnit.SECONDS.toMillis(30));
    }

    /** Waits for a normal end; fails unless the driver exited with status 0. */
    void awaitSuccess() throws InterruptedException {
        awaitSuccess(START_TIMEOUT);
    }

    /** As {@link #awaitSuccess()}, for a run that may take up to {@code limit}. */
    void awaitSuccess(Duration limit) throws InterruptedException {
        if (!process.waitFor(limit.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new AssertionError("the driver did not finish within " + limit + "; output: " + log);
        }
        reader.join(TimeUnit.SECONDS.toMillis(30));
        assertEquals(0, process.exitValue(), "the driver failed; output: " + log + "\n" + tail());
    }

    /** Waits for the driver to end by itself; returns its exit status. */
    int awaitExit() throws InterruptedException {
        if (!process.waitFor(START_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new AssertionError("the driver did not finish within " + START_TIMEOUT + "; output: " + log);
        }
        reader.join(TimeUnit.SECONDS.toMillis(30));
        return process.exitValue();
    }

    String tail() {
        List<String> all = lines();
        return String.join("\n", all.subList(Math.max(0, all.size() - 40), all.size()));
    }

    /** Leaves no process behind when a test fails half-way. */
    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroyForcibly();
            process.waitFor(1, TimeUnit.MINUTES);
        }
    }
}
