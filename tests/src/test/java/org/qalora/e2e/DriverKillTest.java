package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.quant.testing.Fixtures;

/**
 * {@code qalora train} driver processes killed with SIGKILL and restarted, as a crashed driver pod is restarted by
 * its operator: every run here is its own JVM (the launcher's main class and flags, Spark {@code local[2]}, so the
 * executors are threads of the driver and die with it), on a real HDFS (MiniDFSCluster in this JVM, which outlives
 * the drivers). The restarted driver runs the same command and must end with exactly the files of an uninterrupted
 * reference run, compared byte for byte (metrics aside from their wall-clock fields; see
 * {@link RunOutput#assertSameAs}); after every kill a reader must see no half-written output.
 * <ol>
 *   <li>killed while the executors train round 2;
 *   <li>killed while the merged model is being written, then (next driver) between the rename of the complete
 *   version and the LATEST flip;
 *   <li>a 6-round run killed at seeded random points ({@link KillPoint#plan}; {@code -Dqalora.chaos.seed=N} replays
 *   another draw).
 * </ol>
 * The fixture GPTQ model (vocab 512) with a tokenizer shrunk to 512 pieces ({@link SmallTokenizer}) in its
 * directory, so the published model carries a tokenizer too, and the bundled Alpaca sample.
 */
@Timeout(value = 12, unit = TimeUnit.MINUTES)
class DriverKillTest {
    private static final int ROUNDS = 6;
    /**
     * Draws ROUND_RENAMED (round 1), TRAINING (round 3), ROUND_RENAMED (round 6): a lost metrics line twice, the
     * last of them with the pruning after the last round skipped too, and a kill mid-round in between.
     */
    private static final long DEFAULT_CHAOS_SEED = 20261206L;
    /** Each kill costs one more driver start (JVM, Spark, the first round's warm-up): three keep the test short. */
    private static final int CHAOS_KILLS = 3;

    /** Each driver's output, kept after the run (under the module's target/) for a failure's post-mortem. */
    private static final Path LOGS = Path.of("target", "driver-kill-logs");

    @TempDir
    static Path base;
    private static TestCluster cluster;
    private static RunOutput reference;

    @BeforeAll
    static void referenceRun() throws Exception {
        if (Files.isDirectory(LOGS)) { // only this run's logs, so a post-mortem never reads an older one
            try (var old = Files.list(LOGS)) {
                for (Path p : old.toList()) {
                    Files.delete(p);
                }
            }
        }
        Files.createDirectories(LOGS);
        cluster = new TestCluster(base);
        Path model = Files.createDirectories(base.resolve("model"));
        for (String f : List.of("config.json", "model.safetensors", "quantize_config.json")) {
            Files.copy(Fixtures.tinyLlamaGptq().resolve(f), model.resolve(f));
        }
        SmallTokenizer.write(Fixtures.tokenizer(), 512, model.resolve("tokenizer.json"));
        Files.copy(Fixtures.tokenizer().resolveSibling("tokenizer_config.json"), model.resolve("tokenizer_config.json"));
        cluster.put(model, "/model");
        cluster.put(Fixtures.root().resolveSibling("samples").resolve("alpaca-sample.json"), "/data/alpaca.json");
        reference = output("/runs/reference");
        try (DriverProcess driver = start(reference, "reference", null)) {
            driver.awaitSuccess();
        }
        reference.checkNothingHalfWrittenIsVisible("after the reference run");
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    private static RunOutput output(String path) throws Exception {
        return new RunOutput(cluster.fs(), cluster.uri(path));
    }

    /**
     * The one command every run here uses (the model and data paths are part of the run's settings, so they are
     * the same for all); only {@code --output} and the test hook differ.
     */
    private static DriverProcess start(RunOutput out, String name, String hold) throws Exception {
        List<String> args = new ArrayList<>(List.of("--model", cluster.uri("/model"),
                "--data", cluster.uri("/data/alpaca.json"), "--output", out.root().toString(),
                "--rounds", Integer.toString(ROUNDS), "--steps-per-round", "2", "--slots", "2",
                "--micro-batch-tokens", "256", "--seed", "7", "--device", "cpu", "--master", "local[2]",
                "--conf", "spark.hadoop.dfs.replication=1", "--conf", "spark.ui.enabled=false"));
        if (hold != null) {
            args.addAll(List.of("--conf", HoldPoint.CONF_KEY + "=" + hold));
        }
        Path work = Files.createDirectories(base.resolve("work-" + name));
        return DriverProcess.train(work, LOGS.resolve(name + ".log"), args);
    }

    /**
     * Starts a driver on {@code out} (where the last committed round is {@code committed}) that must reach
     * {@code point}, kills it there and checks what it left; returns the last committed round after the kill.
     */
    private static int killAt(KillPoint point, RunOutput out, String name, int committed) throws Exception {
        try (DriverProcess driver = start(out, name, point.hold())) {
            point.await(driver, out, ROUNDS);
            if (point.kind() != KillPoint.Kind.PREPARING) { // the rounds, and their first line, come after the data
                assertResumed(driver, committed);
            }
            driver.kill();
        }
        point.checkAfterKill(out, ROUNDS);
        return out.latestCommittedRound();
    }

    /** Starts a driver that must finish, and checks that it resumed from {@code committed}. */
    private static DriverProcess finish(RunOutput out, String name, int committed) throws Exception {
        try (DriverProcess driver = start(out, name, null)) {
            driver.awaitSuccess();
            assertResumed(driver, committed);
            return driver;
        }
    }

    private static void assertResumed(DriverProcess driver, int committed) {
        String expected = KillPoint.resumeLine(committed);
        assertTrue(driver.lines().stream().anyMatch(l -> l.startsWith(expected)),
                "the restarted driver must say '" + expected + "...'; output: " + driver.log());
    }

    @Test
    void aDriverKilledWhileTheExecutorsTrainIsResumedByAFreshProcessToTheReferenceFiles() throws Exception {
        RunOutput out = output("/runs/killed-training");
        int committed = killAt(new KillPoint(KillPoint.Kind.TRAINING, 2), out, "training-1", -1);
        finish(out, "training-2", committed);
        out.assertSameAs(reference);
    }

    @Test
    void aDriverKilledTwiceWhilePublishingIsResumedToTheReferenceFilesAndLatestNeverNamesAHalfModel()
            throws Exception {
        RunOutput out = output("/runs/killed-publishing");
        killAt(new KillPoint(KillPoint.Kind.WRITING_MODEL, 0), out, "publishing-1", -1);
        try (DriverProcess second = start(out, "publishing-2", HoldPoint.VERSION_RENAMED)) {
            KillPoint renamed = new KillPoint(KillPoint.Kind.VERSION_RENAMED, 0);
            renamed.await(second, out, ROUNDS);
            assertResumed(second, ROUNDS);
            // The restarted driver removed the first one's half-written model before publishing its own.
            assertTrue(out.list("").stream().noneMatch(n -> n.startsWith("_tmp-")), "leftovers: " + out.list(""));
            second.kill();
            renamed.checkAfterKill(out, ROUNDS);
        }
        DriverProcess third = finish(out, "publishing-3", ROUNDS);
        assertTrue(third.lines().stream().anyMatch(l -> l.contains("completing that publish")),
                "the third driver only flips LATEST; output: " + third.log());
        out.assertSameAs(reference);
    }

    @Test
    void aSixRoundRunKilledAtSeededRandomPointsEndsWithTheReferenceFiles() throws Exception {
        long seed = Long.getLong("qalora.chaos.seed", DEFAULT_CHAOS_SEED);
        List<KillPoint> plan = KillPoint.plan(new Random(seed), CHAOS_KILLS, ROUNDS);
        System.out.println("DriverKillTest chaos: seed " + seed + ", kill points " + plan);
        RunOutput out = output("/runs/chaos");
        int committed = -1;
        for (int k = 0; k < plan.size(); k++) {
            int before = committed;
            committed = killAt(plan.get(k), out, "chaos-" + (k + 1), committed);
            assertTrue(committed >= before, "kill " + (k + 1) + " at " + plan.get(k) + " lost committed rounds");
        }
        finish(out, "chaos-" + (plan.size() + 1), committed);
        out.assertSameAs(reference);
    }
}
