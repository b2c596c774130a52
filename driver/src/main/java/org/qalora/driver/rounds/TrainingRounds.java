package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.quant.io.ShippedHadoopConf;

/**
 * The training rounds (DL4J parameter averaging): round r is one Spark job with one task per slot; each task runs
 * K local steps from committed state r-1 and writes its update to the checkpoint directory; a second Spark job
 * then averages the updates on the executors, one task per key range, each key token-weighted in float64 in slot
 * order ({@link ExecutorAveraging}), into part files of round r's commit directory, and the driver commits round r
 * (manifest, rename). No barrier mode: a failed task is retried alone. Rerunning on the same checkpoint directory
 * resumes after the last committed round and, because every seed derives from (seed, round, slot) and every
 * reduction has a fixed order, ends bit-identical to an uninterrupted run. Every byte of an update is checked
 * against the CRC32C its task computed while writing it, as it is averaged; an update that fails is not averaged
 * but retrained (see {@link #runAndAverage}).
 */
public final class TrainingRounds {

    /**
     * The outcome: the last committed round (its state stays in its files: the driver never loads it), the metrics
     * of the rounds run now, and where it began.
     */
    public record Result(CheckpointStore.Committed last, List<RoundMetrics> metrics, int resumedFrom) {}

    /** How often the driver re-runs a slot whose update file fails its CRC32C check before failing the round. */
    public static final int MAX_SLOT_RERUNS = 3;

    private final JavaSparkContext jsc;
    private final Storage storage;
    private final CheckpointStore store;
    private final SlotTrainerFactory factory;
    private final RoundSettings settings;
    private final FaultPlan faults;
    private final Consumer<String> progress;
    private final AveragingStageResources averagingResources;

    public TrainingRounds(JavaSparkContext jsc, Storage storage, CheckpointStore store, SlotTrainerFactory factory,
                          RoundSettings settings, FaultPlan faults, Consumer<String> progress) {
        this.jsc = jsc;
        this.storage = storage;
        this.store = store;
        this.factory = factory;
        this.settings = settings;
        this.faults = faults;
        this.progress = progress;
        this.averagingResources = AveragingStageResources.decide(jsc.getConf(), settings.averagingTaskCpus());
    }

    public Result run() {
        String planHash = factory.planHash();
        progress.accept("averaging stage: " + averagingResources.reason());
        CheckpointStore.Committed current = store.latestCommitted().orElse(null);
        int resumedFrom;
        if (current == null) {
            progress.accept("new run: committing the initial adapter as round 0 in " + store.dir());
            current = InitialStateTask.commit(jsc, storage, store, factory, settings, planHash);
            resumedFrom = 0;
        } else {
            if (!settings.configHash().equals(current.manifest().configHash())
                    || !planHash.equals(current.manifest().planHash())) {
                throw new IllegalStateException(current.dir() + " was committed by a run with a different "
                        + (planHash.equals(current.manifest().planHash()) ? "configuration" : "data plan")
                        + "; refusing to resume it: use another --output, or the original settings");
            }
            resumedFrom = current.round();
            progress.accept("resuming from committed round " + current.round() + " (global step "
                    + current.manifest().globalStep() + ") in " + store.dir());
        }
        store.tidyAfterRestart(current, settings.keepRounds());
        List<RoundMetrics> metrics = new ArrayList<>();
        RoundMetrics previous = current.manifest().metrics();
        if (previous != null && !store.metricsRounds().contains(current.round())) {
            // The driver stopped after committing this round but before logging it (its held-out loss runs in
            // between): log it now, so metrics.jsonl has every committed round once.
            progress.accept("round " + current.round() + " was committed but not logged: logging it now");
            previous = settings.evaluates(current.round()) ? evaluate(current, previous) : previous;
            store.appendMetrics(previous);
        }
        for (int r = current.round() + 1; r <= settings.rounds(); r++) {
            RoundMetrics m;
            CheckpointStore.Committed next;
            long t0 = System.nanoTime();
            int[] reruns = new int[settings.slots()];
            long[] averagingNanos = new long[1];
            List<SlotMetrics> slots = new ArrayList<>();
            ExecutorAveraging.Outcome avg = runAndAverage(r, current, previous, reruns, slots, averagingNanos);
            long jobNanos = System.nanoTime() - t0 - averagingNanos[0];
            long averagingMillis = averagingNanos[0] / 1_000_000;
            double seconds = jobNanos / 1e9;
            double lossSum = 0;
            double[] slotLosses = new double[slots.size()];
            long slowest = 0;
            int attempts = 0;
            String[] devices = new String[slots.size()];
            for (SlotMetrics s : slots) {
                devices[s.slot()] = s.executorId() + "/" + s.device();
                lossSum += s.lossSum();
                slotLosses[s.slot()] = s.lossSum() / s.targetTokens();
                slowest = Math.max(slowest, s.trainMillis());
                attempts += s.attempt() + 1 + reruns[s.slot()];
            }
            long c0 = System.nanoTime();
            UpdateAverager.Measures measures = avg.measures();
            m = new RoundMetrics(r, avg.step(), settings.slots(), lossSum / avg.totalTokens(), slotLosses,
                    avg.totalTokens(), avg.totalTokens() / seconds, seconds, slowest, averagingMillis, 0,
                    measures.slotSpread(), measures.maxFactorDiscordance(), measures.meanFactorDiscordance(), attempts,
                    devices, null, 0, 0);
            next = store.commitPrepared(r, avg.commitDir(), avg.files(), avg.step(), planHash, settings.configHash(), m);
            store.prune(r, settings.keepRounds());
            m = m.withCommitMillis((System.nanoTime() - c0) / 1_000_000);
            if (settings.evaluates(r)) {
                m = evaluate(next, m);
            }
            store.appendMetrics(m);
            metrics.add(m);
            progress.accept(m.progressLine(settings.rounds()));
            current = next;
            previous = m;
            faults.maybeStop(r);
        }
        return new Result(current, metrics, resumedFrom);
    }

    /**
     * Runs round {@code round}'s slot job, then its averaging job ({@link ExecutorAveraging}), whose tasks check
     * every update byte they read against the CRC32Cs the slot's task computed while writing it. A slot whose file
     * does not match (changed after the task wrote it: a bad disk, a torn copy) is never averaged: its file is deleted
     * and the slot's task resubmitted, then the averaging job rerun, at most {@link #MAX_SLOT_RERUNS} times, after
     * which the round fails naming round, slot and file. Training is deterministic, so the re-run writes the same
     * bytes an undisturbed run would have. Fills {@code slots} (slot order), {@code reruns[s]} (slot s's re-runs)
     * and {@code averagingNanos[0]} (time in the averaging jobs); returns the averaging outcome, ready to commit.
     */
    private ExecutorAveraging.Outcome runAndAverage(int round, CheckpointStore.Committed start, RoundMetrics previous,
                                                    int[] reruns, List<SlotMetrics> slots, long[] averagingNanos) {
        Path updates = store.updatesDir(round);
        storage.delete(updates); // leftovers of a crashed driver: retrained, so every update comes from this start state
        storage.mkdirs(updates);
        List<Integer> all = new ArrayList<>();
        for (int s = 0; s < settings.slots(); s++) {
            all.add(s);
        }
        slots.addAll(runJob(round, start, previous, all, 0));
        for (int rerun = 1; ; rerun++) {
            long a0 = System.nanoTime();
            ExecutorAveraging.Outcome outcome;
            try {
                outcome = ExecutorAveraging.run(jsc, storage, store, round, start, slots, settings.averagingParts(),
                        averagingResources, faults, String.format("qalora round %d/%d", round, settings.rounds()));
            } catch (RuntimeException e) {
                throw new RoundFailedException("round " + round + " failed: " + rootMessage(e) + ". The last committed"
                        + " round " + start.round() + " is kept in " + start.dir() + "; rerun the same command to resume"
                        + " from it.", e);
            } finally {
                averagingNanos[0] += System.nanoTime() - a0;
            }
            if (!outcome.refused()) {
                return outcome;
            }
            java.util.TreeMap<Integer, String> bad = new java.util.TreeMap<>();
            for (AveragedPart p : outcome.refusals()) {
                bad.putIfAbsent(p.refusedSlot(), p.refusal());
            }
            for (Map.Entry<Integer, String> b : bad.entrySet()) {
                int slot = b.getKey();
                Path file = new Path(updates, CheckpointStore.updateFileName(slot));
                if (rerun > MAX_SLOT_RERUNS) {
                    throw new RoundFailedException("round " + round + " failed: " + b.getValue() + " after "
                            + MAX_SLOT_RERUNS + " re-runs of the slot; the storage under " + updates
                            + " is corrupting or losing files. The last committed round " + start.round()
                            + " is kept in " + start.dir() + "; rerun the same command to resume from it.", null);
                }
                progress.accept("round " + round + ": " + b.getValue() + ": not averaging it; re-running slot " + slot
                        + " (re-run " + rerun + " of at most " + MAX_SLOT_RERUNS + ")");
                storage.delete(file); // else the re-run would keep it as an earlier attempt's output
                reruns[slot]++;
            }
            List<SlotMetrics> fresh = runJob(round, start, previous, new ArrayList<>(bad.keySet()), rerun);
            for (SlotMetrics m : fresh) {
                slots.set(m.slot(), m);
            }
        }
    }

    /**
     * Runs one Spark job of round {@code round} over {@code slotIds} ({@code rerun} 0: the round's job; n: the
     * driver's n-th re-run of slots that failed verification); returns their metrics in slot order, one per slot.
     * Its description in the Spark UI names the round and carries the previous round's metrics line, so the UI's job
     * list reads as the training log.
     */
    private List<SlotMetrics> runJob(int round, CheckpointStore.Committed start, RoundMetrics previous,
                                     List<Integer> slotIds, int rerun) {
        Path updates = store.updatesDir(round);
        List<SlotAssignment> assignments = new ArrayList<>();
        for (int s : slotIds) {
            assignments.add(new SlotAssignment(round, s, settings.slots(), settings.stepsPerRound(),
                    start.manifest().globalStep(), SlotAssignment.deriveSeed(settings.seed(), round, s)));
        }
        SlotTask task = new SlotTask(factory, new ShippedHadoopConf(storage.conf()), StateRef.of(start),
                updates.toString(), faults, rerun, settings.updateReplication());
        String description = String.format("qalora round %d/%d: %d slots x %d steps from global step %d", round,
                settings.rounds(), settings.slots(), settings.stepsPerRound(), start.manifest().globalStep());
        if (rerun > 0) {
            description += " | re-run " + rerun + " of slots " + slotIds;
        }
        if (previous != null) {
            description += " | previous " + previous.progressLine(settings.rounds());
        }
        jsc.setJobGroup("qalora-round-" + round, description, false);
        List<SlotMetrics> result;
        try {
            result = new ArrayList<>(jsc.parallelize(assignments, assignments.size()).mapPartitions(task).collect());
        } catch (Exception e) { // SparkException is checked in Java's eyes though Scala throws it freely
            throw new RoundFailedException("round " + round + " failed: " + rootMessage(e) + ". The last committed round "
                    + start.round() + " is kept in " + start.dir() + "; rerun the same command to resume from it.", e);
        } finally {
            jsc.clearJobGroup();
        }
        result.sort(Comparator.comparingInt(SlotMetrics::slot));
        if (!result.stream().map(SlotMetrics::slot).toList().equals(slotIds)) {
            throw new IllegalStateException("round " + round + ": the job returned slots "
                    + Arrays.toString(result.stream().mapToInt(SlotMetrics::slot).toArray()) + ", expected " + slotIds);
        }
        return result;
    }

    /**
     * The held-out loss of a committed round's adapter: one Spark job of {@code slots} tasks, task p evaluating part p
     * of the held-out batches on the executor's cached base model and the committed state file (never through the
     * driver). The parts' sums are added in part order, so the number does not depend on where or when tasks ran.
     */
    private RoundMetrics evaluate(CheckpointStore.Committed committed, RoundMetrics m) {
        int parts = settings.slots();
        List<Integer> ids = new ArrayList<>();
        for (int p = 0; p < parts; p++) {
            ids.add(p);
        }
        long t0 = System.nanoTime();
        EvalTask task = new EvalTask(factory, new ShippedHadoopConf(storage.conf()), StateRef.of(committed), parts);
        jsc.setJobGroup("qalora-eval-" + committed.round(), String.format("qalora held-out loss of round %d/%d: %d "
                + "parts | %s", committed.round(), settings.rounds(), parts, m.progressLine(settings.rounds())), false);
        List<EvalMetrics> results;
        try {
            results = new ArrayList<>(jsc.parallelize(ids, parts).mapPartitions(task).collect());
        } catch (Exception e) { // SparkException is checked in Java's eyes though Scala throws it freely
            throw new RoundFailedException("the held-out loss of round " + committed.round() + " failed: "
                    + rootMessage(e) + ". Round " + committed.round() + " is committed in " + committed.dir()
                    + "; rerun the same command to log it and go on.", e);
        } finally {
            jsc.clearJobGroup();
        }
        results.sort(java.util.Comparator.comparingInt(EvalMetrics::part));
        if (!results.stream().map(EvalMetrics::part).toList().equals(ids)) {
            throw new IllegalStateException("held-out loss of round " + committed.round() + ": the job returned parts "
                    + results.stream().map(EvalMetrics::part).toList() + ", expected " + ids);
        }
        double lossSum = 0;
        long tokens = 0;
        for (EvalMetrics e : results) {
            lossSum += e.lossSum();
            tokens += e.targetTokens();
        }
        if (tokens == 0) {
            throw new IllegalStateException("the held-out data has no target tokens (every label is masked): check "
                    + "--eval-data");
        }
        return m.withEval(lossSum / tokens, tokens, (System.nanoTime() - t0) / 1_000_000);
    }

    private static String rootMessage(Throwable e) {
        String msg = e.getMessage();
        // Spark wraps the task's exception text into the job failure message; keep the part that names it.
        if (msg != null) {
            int i = msg.indexOf("NonFiniteLossError: ");
            if (i >= 0) {
                String rest = msg.substring(i + "NonFiniteLossError: ".length());
                int nl = rest.indexOf('\n');
                return nl < 0 ? rest : rest.substring(0, nl);
            }
            int nl = msg.indexOf('\n');
            return nl < 0 ? msg : msg.substring(0, nl);
        }
        return e.toString();
    }
}
