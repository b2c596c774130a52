package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.RoundManifest;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.kernels.KernelPool;

/**
 * The driver's side of a round's averaging stage: splits the adapter's keys into byte-balanced ranges
 * ({@link KeyRanges}), runs one {@link AveragingTask} per range into a fresh commit directory of the round, and
 * gathers what the commit needs: the part files with their sizes and SHA-256s, the step, and the disagreement
 * measures combined in a fixed order. The driver reads only the start state's headers (the layout); the update
 * bytes are read, checked and averaged on the executors, each byte once, so the averaging's I/O and CPU scale with
 * the executors and the driver's share of a round is a manifest and a rename.
 */
public final class ExecutorAveraging {
    private ExecutorAveraging() {}

    /**
     * The stage's result: either a commit directory with the round's parts ({@code files}, in key order), or, when
     * some update failed its check, the refusing parts (and nothing left behind).
     */
    public record Outcome(Path commitDir, Map<String, RoundManifest.FileEntry> files, long step, long totalTokens,
                          UpdateAverager.Measures measures, List<AveragedPart> refusals, long slowestMillis) {
        public boolean refused() { return !refusals.isEmpty(); }
    }

    /**
     * Averages round {@code round}'s updates of {@code slots} (all of the round's slots, in slot order, each with
     * the digests its task reported) into at most {@code parts} part files ({@code --averaging-parts}; 0: as many as
     * {@link KeyRanges#count} picks for the layout and slot count), starting from {@code start}'s layout, with
     * the stage's tasks taking {@code resources}.
     */
    public static Outcome run(JavaSparkContext jsc, Storage storage, CheckpointStore store, int round,
                              CheckpointStore.Committed start, List<SlotMetrics> slots, int parts,
                              AveragingStageResources resources, FaultPlan faults, String description) {
        Map<String, long[]> layout = AdapterStateFile.layout(storage, start.stateFiles()); // headers only
        List<List<String>> ranges = KeyRanges.split(layout, KeyRanges.count(layout, parts, slots.size()));
        SegmentDigests[] digests = new SegmentDigests[slots.size()];
        for (int s = 0; s < slots.size(); s++) {
            if (slots.get(s).slot() != s) {
                throw new IllegalArgumentException("slots must come in order 0.." + (slots.size() - 1));
            }
            digests[s] = slots.get(s).update();
        }
        Path commitDir = store.beginCommit(round);
        AveragingTask task = new AveragingTask(new ShippedHadoopConf(storage.conf()), round,
                store.updatesDir(round).toString(), digests, layout, ranges, commitDir.toString(), faults);
        List<Integer> ids = new ArrayList<>();
        for (int p = 0; p < ranges.size(); p++) {
            ids.add(p);
        }
        jsc.setJobGroup("qalora-average-" + round, description + ": averaging " + slots.size() + " slots' updates in "
                + ranges.size() + " key ranges on the executors", false);
        List<AveragedPart> results;
        try {
            JavaRDD<Integer> rdd = jsc.parallelize(ids, ids.size());
            if (resources.ownProfile()) {
                rdd = rdd.withResources(resources.profile());
            }
            results = new ArrayList<>(rdd.mapPartitions(task).collect());
        } catch (Exception e) { // SparkException is checked in Java's eyes though Scala throws it freely
            storage.deleteQuietly(commitDir);
            String msg = String.valueOf(e.getMessage());
            throw new IllegalStateException("the averaging job failed: " + (msg.indexOf('\n') < 0 ? msg
                    : msg.substring(0, msg.indexOf('\n'))), e);
        } finally {
            jsc.clearJobGroup();
        }
        results.sort(Comparator.comparingInt(AveragedPart::part));
        if (!results.stream().map(AveragedPart::part).toList().equals(ids)) {
            storage.deleteQuietly(commitDir);
            throw new IllegalStateException("round " + round + ": the averaging job returned parts "
                    + results.stream().map(AveragedPart::part).toList() + ", expected " + ids);
        }
        List<AveragedPart> refusals = results.stream().filter(AveragedPart::refused).toList();
        long slowest = results.stream().mapToLong(AveragedPart::millis).max().orElse(0);
        if (!refusals.isEmpty()) {
            storage.deleteQuietly(commitDir); // the good parts are cheap to redo once the refused slots are re-run
            return new Outcome(null, Map.of(), -1, 0, null, refusals, slowest);
        }
        Map<String, RoundManifest.FileEntry> files = new LinkedHashMap<>();
        List<UpdateAverager.KeyStats> stats = new ArrayList<>();
        for (AveragedPart p : results) {
            if (p.step() != results.get(0).step() || p.totalTokens() != results.get(0).totalTokens()) {
                throw new IllegalStateException("round " + round + ": averaging task " + p.part() + " read step "
                        + p.step() + " and " + p.totalTokens() + " tokens, task 0 " + results.get(0).step() + " and "
                        + results.get(0).totalTokens() + ": the update files changed during the stage");
            }
            files.put(p.file(), new RoundManifest.FileEntry(p.bytes(), p.sha256()));
            stats.add(p.stats());
        }
        long total = results.get(0).totalTokens();
        UpdateAverager.Measures measures = new UpdateAverager(layout, KernelPool.shared())
                .measures(stats, slots.size(), total);
        return new Outcome(commitDir, files, results.get(0).step(), total, measures, List.of(), slowest);
    }
}
