package org.qalora.driver.rounds;

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
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.driver.testing.ToyTrainerFactory;

/**
 * The round machinery on Spark local mode with retries ({@code local[2,4]}), Kryo registration required, and the
 * deterministic toy trainer: determinism, resume, task retry, non-finite loss, refusing a foreign run.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class TrainingRoundsTest {
    private static JavaSparkContext jsc;
    @TempDir
    static Path tmp;

    @BeforeAll
    static void startSpark() {
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2,4]", "TrainingRoundsTest");
        conf.set("spark.ui.enabled", "false");
        jsc = new JavaSparkContext(conf);
    }

    @AfterAll
    static void stopSpark() {
        if (jsc != null) {
            jsc.stop();
        }
    }

    private static final RoundSettings SETTINGS = new RoundSettings(4, 3, 3, 42L, "cfg-1", 2, 0);

    private TrainingRounds.Result run(String dir, RoundSettings settings, ToyTrainerFactory factory, FaultPlan faults,
                                      List<String> log) {
        Storage storage = new Storage(new Configuration());
        CheckpointStore store = new CheckpointStore(storage, storage.path(tmp.resolve(dir).toString()), log::add);
        return new TrainingRounds(jsc, storage, store, factory, settings, faults, log::add).run();
    }

    /** The run's final state, read from its committed files (the rounds never load it on the driver). */
    private static org.qalora.driver.state.AdapterTensors state(TrainingRounds.Result r) {
        return org.qalora.driver.state.AdapterStateFile.read(new Storage(new Configuration()), r.last().stateFiles())
                .state();
    }

    @Test
    void roundsLowerTheLossAndAreDeterministic() throws Exception {
        List<String> descriptions = java.util.Collections.synchronizedList(new ArrayList<>());
        org.apache.spark.scheduler.SparkListener listener = new org.apache.spark.scheduler.SparkListener() {
            @Override
            public void onJobStart(org.apache.spark.scheduler.SparkListenerJobStart start) {
                descriptions.add(String.valueOf(start.properties().getProperty("spark.job.description")));
            }
        };
        jsc.sc().addSparkListener(listener);
        List<String> log = new ArrayList<>();
        var a = run("det-a", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(), log);
        var b = run("det-b", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(), new ArrayList<>());
        assertEquals(4, a.metrics().size());
        assertTrue(a.metrics().get(3).loss() < a.metrics().get(0).loss(), "loss should go down: " + a.metrics());
        assertEquals(4 * 3, state(a).step(), "global step = rounds x K");
        assertTrue(state(a).bitwiseEquals(state(b)), "two identical runs must give bitwise-equal adapters");
        assertTrue(a.metrics().get(0).slotSpread() > 0, "slots trained on different data must disagree a little");
        assertTrue(log.stream().anyMatch(l -> l.startsWith("round 4/4: loss")), String.join("\n", log));
        // The metrics log has one line per round, and old rounds were pruned to the last two.
        Path ckpt = tmp.resolve("det-a");
        assertEquals(4, assertDoesNotThrowLines(ckpt.resolve(CheckpointStore.METRICS)));
        assertFalse(Files.exists(ckpt.resolve("round-00002")));
        assertTrue(Files.exists(ckpt.resolve("round-00003/_MANIFEST.json")));
        assertFalse(Files.exists(ckpt.resolve("updates-00004")), "finished update directories are pruned");
        // Each round's Spark job is described in the UI with the round and the previous round's metrics.
        for (int i = 0; i < 50 && descriptions.stream().noneMatch(d -> d.startsWith("qalora round 4/4")); i++) {
            Thread.sleep(100); // listener events arrive asynchronously
        }
        jsc.sc().removeSparkListener(listener);
        assertTrue(descriptions.stream().anyMatch(d -> d.startsWith("qalora round 2/4: 3 slots x 3 steps from global step 3 "
                + "| previous round 1/4: loss")), descriptions.toString());
    }

    @Test
    void resumingAfterAStopEndsBitIdenticalEvenWithAnotherAveragingPartCount() throws Exception {
        var full = run("full", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(), new ArrayList<>());
        assertThrows(FaultPlan.RunStoppedException.class, () -> run("resumed", SETTINGS,
                new ToyTrainerFactory(7, "", 0.05f), FaultPlan.parse("stop:2"), new ArrayList<>()));
        // A torn round-3 (no manifest) and a temporary leftover must be ignored.
        Path ckpt = tmp.resolve("resumed");
        Files.createDirectories(ckpt.resolve("round-00003"));
        Files.writeString(ckpt.resolve("round-00003/adapter_state.safetensors"), "half");
        Files.createDirectories(ckpt.resolve("_tmp-round-00003-x"));
        // The resumed run averages in one key range where the first averaged in two (one per toy module): the parts
        // of the committed round 2 are read whatever their count, and the count changes no bit.
        assertEquals(2, full.last().stateFiles().size(), "the toy's two modules, one per range");
        List<String> log = new ArrayList<>();
        var resumed = run("resumed", SETTINGS.withAveragingParts(1), new ToyTrainerFactory(7, "", 0.05f),
                FaultPlan.none(), log);
        assertEquals(1, resumed.last().stateFiles().size(), resumed.last().stateFiles()::toString);
        assertEquals(2, resumed.resumedFrom());
        assertTrue(log.contains("resuming from committed round 2 (global step 6) in " + new Storage(new Configuration())
                .path(ckpt.toString())), String.join("\n", log));
        assertTrue(state(resumed).bitwiseEquals(state(full)), "resumed run must equal the uninterrupted one");
        try (var files = Files.list(ckpt)) {
            assertTrue(files.anyMatch(p -> p.getFileName().toString().startsWith("_torn-round-00003")),
                    "the torn directory is moved aside, not deleted");
        }
    }

    @Test
    void aFailedTaskIsRetriedAndChangesNothing() throws Exception {
        var clean = run("clean", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(), new ArrayList<>());
        var faulty = run("faulty", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.parse("throw:2:1"),
                new ArrayList<>());
        assertTrue(state(faulty).bitwiseEquals(state(clean)));
        assertEquals(3 + 1, faulty.metrics().get(1).taskAttempts(), "slot 1 of round 2 needed a second attempt");
        // An averaging task that fails after its part is in place: its retry keeps that part, the state is the same.
        List<String> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        org.apache.spark.scheduler.SparkListener listener = new org.apache.spark.scheduler.SparkListener() {
            @Override
            public void onTaskEnd(org.apache.spark.scheduler.SparkListenerTaskEnd end) {
                if (!(end.reason() instanceof org.apache.spark.Success$)) {
                    failures.add(end.reason().toString());
                }
            }
        };
        jsc.sc().addSparkListener(listener);
        var averagingFaulty = run("averaging-faulty", SETTINGS, new ToyTrainerFactory(7, "", 0.05f),
                FaultPlan.parse("averagethrow:2:1"), new ArrayList<>());
        for (int i = 0; i < 50 && failures.isEmpty(); i++) {
            Thread.sleep(100); // listener events arrive asynchronously
        }
        jsc.sc().removeSparkListener(listener);
        assertTrue(failures.size() == 1 && failures.get(0).contains("averaging task 1 after its part file was renamed"),
                failures.toString());
        assertTrue(state(averagingFaulty).bitwiseEquals(state(clean)));
        assertEquals(clean.metrics().get(1).slotSpread(), averagingFaulty.metrics().get(1).slotSpread(), 0.0);
    }

    @Test
    void aCorruptedUpdateIsDetectedAndItsSlotRerunAndChangesNothing() {
        var clean = run("uncorrupted", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(), new ArrayList<>());
        List<String> log = new ArrayList<>();
        var corrupted = run("corrupted", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.parse("corrupt:2:1"),
                log);
        String slotFile = CheckpointStore.updateFileName(1);
        assertTrue(log.stream().anyMatch(l -> l.startsWith("round 2: slot 1's update ") && l.contains(slotFile)
                && l.contains("does not match the CRC32C its task reported") && l.contains("re-running slot 1 (re-run 1 of ")),
                String.join("\n", log));
        assertEquals(1, log.stream().filter(l -> l.contains("re-running slot")).count(), String.join("\n", log));
        assertEquals(3 + 1, corrupted.metrics().get(1).taskAttempts(), "slot 1 of round 2 ran twice");
        assertTrue(state(corrupted).bitwiseEquals(state(clean)),
                "the re-run slot's fresh update must be averaged, not the corrupted one");
    }

    @Test
    void aLostUpdateIsRefusedAndItsSlotRerunAndChangesNothing() {
        var clean = run("not-lost", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(), new ArrayList<>());
        List<String> log = new ArrayList<>();
        var lost = run("lost", SETTINGS, new ToyTrainerFactory(7, "", 0.05f), FaultPlan.parse("lose:3:0"), log);
        String slotFile = CheckpointStore.updateFileName(0);
        assertTrue(log.stream().anyMatch(l -> l.startsWith("round 3: slot 0's update ") && l.contains(slotFile)
                && l.contains("cannot be read: FileNotFoundException") && l.contains("re-running slot 0 (re-run 1 of ")),
                String.join("\n", log));
        assertEquals(3 + 1, lost.metrics().get(2).taskAttempts(), "slot 0 of round 3 ran twice");
        assertTrue(state(lost).bitwiseEquals(state(clean)), "the re-run slot's update must be averaged");
    }

    @Test
    void anUpdateThatKeepsFailingVerificationFailsTheRoundNamingRoundSlotAndFile() {
        List<String> log = new ArrayList<>();
        RoundFailedException e = assertThrows(RoundFailedException.class, () -> run("always-corrupt", SETTINGS,
                new ToyTrainerFactory(7, "", 0.05f), FaultPlan.parse("corrupt:3:2:100"), log));
        assertTrue(e.getMessage().startsWith("round 3 failed: slot 2's update "), e.getMessage());
        assertTrue(e.getMessage().contains(CheckpointStore.updateFileName(2)), e.getMessage());
        assertTrue(e.getMessage().contains("after " + TrainingRounds.MAX_SLOT_RERUNS + " re-runs"), e.getMessage());
        assertTrue(e.getMessage().contains("last committed round 2"), e.getMessage());
        assertEquals(TrainingRounds.MAX_SLOT_RERUNS, log.stream().filter(l -> l.contains("re-running slot 2")).count(),
                String.join("\n", log));
        Storage storage = new Storage(new Configuration());
        var store = new CheckpointStore(storage, storage.path(tmp.resolve("always-corrupt").toString()), s -> {});
        assertEquals(2, store.latestCommitted().orElseThrow().round());
    }

    @Test
    void aNonFiniteLossFailsTheRoundNamingSlotAndStepAndKeepsTheLastRound() {
        List<String> log = new ArrayList<>();
        RoundFailedException e = assertThrows(RoundFailedException.class,
                () -> run("nan", SETTINGS, new ToyTrainerFactory(7, "3:2:1", 0.05f), FaultPlan.none(), log));
        assertTrue(e.getMessage().contains("round 3 failed: non-finite loss NaN in round 3, slot 2, local step 1"),
                e.getMessage());
        assertTrue(e.getMessage().contains("last committed round 2"), e.getMessage());
        Storage storage = new Storage(new Configuration());
        var store = new CheckpointStore(storage, storage.path(tmp.resolve("nan").toString()), s -> {});
        assertEquals(2, store.latestCommitted().orElseThrow().round());
    }

    @Test
    void aRunWithAnotherConfigurationIsRefused() {
        run("foreign", new RoundSettings(1, 3, 3, 42L, "cfg-1", 2, 0), new ToyTrainerFactory(7, "", 0.05f),
                FaultPlan.none(), new ArrayList<>());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> run("foreign",
                new RoundSettings(2, 3, 3, 42L, "cfg-2", 2, 0), new ToyTrainerFactory(7, "", 0.05f), FaultPlan.none(),
                new ArrayList<>()));
        assertTrue(e.getMessage().contains("different configuration"), e.getMessage());
    }

    /**
     * With held-out data every k-th and the last round get a held-out loss, computed on the executors from the
     * committed state: it equals the toy's loss of that state, is in metrics.jsonl and on the progress line, and a
     * round the driver committed but did not log (it stopped during the evaluation) is evaluated and logged on resume.
     */
    @Test
    void heldOutLossOfEveryKthAndTheLastRoundIsLoggedAndARoundCommittedButNotLoggedIsLoggedOnResume() throws Exception {
        RoundSettings settings = new RoundSettings(4, 3, 3, 42L, "cfg-eval", 2, 3);
        ToyTrainerFactory toy = new ToyTrainerFactory(7, "", 0.05f);
        List<String> log = new ArrayList<>();
        var result = run("eval", settings, toy, FaultPlan.none(), log);
        List<RoundMetrics> m = result.metrics();
        assertEquals(null, m.get(0).evalLoss());
        assertEquals(null, m.get(1).evalLoss());
        assertTrue(m.get(2).evalLoss() != null && m.get(3).evalLoss() != null, "round 3 (every 3rd) and 4 (last)");
        assertEquals(7 + 8 + 9, m.get(3).evalTargetTokens(), "three parts, one per slot");
        SlotTrainer.EvalOutcome expected = toy.open("cpu").evaluate(state(result), 0, 1);
        assertEquals(expected.lossSum() / expected.targetTokens(), m.get(3).evalLoss(), 1e-12);
        assertTrue(m.get(3).evalLoss() < m.get(2).evalLoss(), "training on the toy task lowers its held-out loss");
        assertTrue(log.stream().anyMatch(l -> l.startsWith("round 4/4: loss") && l.contains("held-out loss "
                + String.format(java.util.Locale.ROOT, "%.4f", m.get(3).evalLoss()))), String.join("\n", log));
        Path metrics = tmp.resolve("eval").resolve(CheckpointStore.METRICS);
        List<String> lines = Files.readAllLines(metrics);
        assertEquals(4, lines.size());
        assertTrue(lines.get(0).contains("\"evalLoss\":null") && lines.get(3).contains("\"evalLoss\":"
                + m.get(3).evalLoss()), lines.get(3));

        // The driver stopped after committing round 4, before logging it: the rerun evaluates and logs it.
        Files.write(metrics, lines.subList(0, 3));
        List<String> again = new ArrayList<>();
        var rerun = run("eval", settings, toy, FaultPlan.none(), again);
        assertTrue(rerun.metrics().isEmpty(), "no round left to train");
        assertTrue(again.contains("round 4 was committed but not logged: logging it now"), String.join("\n", again));
        List<String> relogged = Files.readAllLines(metrics);
        assertEquals(lines.subList(0, 3), relogged.subList(0, 3));
        assertEquals(4, relogged.size());
        assertTrue(relogged.get(3).startsWith("{\"round\":4,") && relogged.get(3).contains("\"evalLoss\":"
                + m.get(3).evalLoss() + ","), "the same held-out loss as the uninterrupted run's: " + relogged.get(3));
    }

    @Test
    void executorsOpenTheTrainerOnce() {
        ToyTrainerFactory factory = new ToyTrainerFactory(99, "", 0.05f);
        run("once", SETTINGS, factory, FaultPlan.none(), new ArrayList<>());
        assertEquals(1, ExecutorCache.opens(factory.identity(), "cpu"), "4 rounds x 3 slots, one model load");
    }

    private static int assertDoesNotThrowLines(Path file) {
        try {
            return (int) Files.readAllLines(file).stream().filter(l -> !l.isBlank()).count();
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }
}
