package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.qalora.driver.checkpoint.HoldPoint;

/**
 * A moment of a {@code qalora train} run at which a test SIGKILLs the driver, with the marker that says the moment
 * has come and what the run directory must show right after the kill. Markers are files the driver creates or a
 * line it prints; only the two windows that last microseconds (between two renames) use the driver's
 * {@link HoldPoint} test hook, which stops the driver there and prints a line.
 *
 * @param round the round concerned (0 where none is)
 */
record KillPoint(Kind kind, int round) {

    enum Kind {
        /** The dataset is being prepared: its {@code .data.tmp-*} directory exists, no round is committed. */
        PREPARING,
        /**
         * Round {@code round}'s executors train: the first slot's update is written, the other slot still trains
         * (in local mode the slots share one trainer and take turns), the round is not committed.
         */
        TRAINING,
        /** Round {@code round} is renamed into place, its metrics line is not written (held). */
        ROUND_RENAMED,
        /** The last round is committed and the merged model is being written under a {@code _tmp-} name. */
        WRITING_MODEL,
        /** The merged model's version directory is complete and renamed, LATEST not flipped yet (held). */
        VERSION_RENAMED
    }

    /** The {@link HoldPoint#CONF_KEY} value the driver must be started with to reach this point, or null. */
    String hold() {
        return switch (kind) {
            case ROUND_RENAMED -> HoldPoint.roundRenamed(round);
            case VERSION_RENAMED -> HoldPoint.VERSION_RENAMED;
            default -> null;
        };
    }

    /** Waits until the driver is at this point. */
    void await(DriverProcess driver, RunOutput out, int rounds) throws InterruptedException {
        switch (kind) {
            case PREPARING -> driver.await(() -> out.hasEntry("", ".data.tmp-"), "the dataset being prepared");
            case TRAINING -> driver.await(() -> out.hasEntry(String.format("checkpoints/updates-%05d", round), "slot-"),
                    "round " + round + "'s first slot update");
            case WRITING_MODEL -> driver.await(() -> out.exists(String.format("checkpoints/round-%05d", rounds))
                    && out.hasEntry("", "_tmp-"), "the merged model's temporary directory");
            case ROUND_RENAMED, VERSION_RENAMED -> driver.awaitLine(
                    l -> l.contains(HoldPoint.HOLDING + hold() + " "), "the driver holding at " + hold());
        }
    }

    /**
     * What the run directory shows after a kill at this point: the last committed round, and for a kill during the
     * publish the state of the versions. Besides, nothing half-written is visible at any point.
     */
    void checkAfterKill(RunOutput out, int rounds) {
        String when = "after a kill " + this;
        out.checkNothingHalfWrittenIsVisible(when);
        int committed = out.latestCommittedRound();
        switch (kind) {
            case PREPARING -> {
                assertEquals(-1, committed, when);
                assertFalse(out.exists("data"), when + ": no prepared dataset yet");
            }
            case TRAINING -> assertEquals(round - 1, committed, when + ": the round must not be committed yet");
            case ROUND_RENAMED -> {
                assertEquals(round, committed, when);
                assertFalse(out.metricsRounds().contains(round), when + ": its metrics line must not be written yet");
            }
            case WRITING_MODEL -> {
                assertEquals(rounds, committed, when);
                assertTrue(out.latest().isEmpty(), when + ": LATEST must not exist yet");
                assertTrue(out.list("").stream().noneMatch(n -> n.startsWith("v-")), when + ": no version yet");
                assertTrue(out.hasEntry("", "_tmp-"), when + ": the half-written model is left under _tmp-");
            }
            case VERSION_RENAMED -> {
                assertEquals(rounds, committed, when);
                assertTrue(out.latest().isEmpty(), when + ": LATEST must not name the version yet");
                assertEquals(1, out.list("").stream().filter(n -> n.startsWith("v-")).count(), when);
            }
        }
    }

    /** What a fresh driver must say it starts from, after a kill that left {@code committed} as the last round. */
    static String resumeLine(int committed) {
        return committed < 0 ? "qalora: new run: " : "qalora: resuming from committed round " + committed + " ";
    }

    /**
     * {@code kills} kill points in run order, drawn from {@code random}: the run's moments (preparing the data,
     * each round's training and its rename, writing the model, the version's rename) are cut into {@code kills}
     * consecutive stretches of equal length and one moment is drawn from each, so the kills spread over the whole
     * run and each is reached by the driver that runs after the previous kill.
     */
    static List<KillPoint> plan(Random random, int kills, int rounds) {
        List<KillPoint> timeline = new ArrayList<>();
        timeline.add(new KillPoint(Kind.PREPARING, 0));
        for (int r = 1; r <= rounds; r++) {
            timeline.add(new KillPoint(Kind.TRAINING, r));
            timeline.add(new KillPoint(Kind.ROUND_RENAMED, r));
        }
        timeline.add(new KillPoint(Kind.WRITING_MODEL, 0));
        timeline.add(new KillPoint(Kind.VERSION_RENAMED, 0));
        List<KillPoint> plan = new ArrayList<>();
        for (int k = 0; k < kills; k++) {
            int from = k * timeline.size() / kills;
            int to = (k + 1) * timeline.size() / kills;
            plan.add(timeline.get(from + random.nextInt(to - from)));
        }
        return plan;
    }

    @Override
    public String toString() {
        return round > 0 ? kind + " (round " + round + ")" : kind.toString();
    }
}
