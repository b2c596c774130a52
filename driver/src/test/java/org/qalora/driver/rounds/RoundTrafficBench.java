package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;

/**
 * The per-round averaging traffic at LLaMA-7B adapter shapes (issue 13 item 8): QA-LoRA rank r on all 7 projections
 * of L layers, A {@code [r, in/g]} and B {@code [out, r]}, weights and both Adam moments in fp32 (about 1.07 GB a
 * slot at r 64, g 32, 32 layers). Synthetic slot updates are written exactly as {@link SlotTask} writes them
 * ({@link AdapterStateFile#writeUpdate} into {@code updates-00001/}), then each round's averaging is timed both ways,
 * in the same run:
 * <ul>
 *   <li>driver path (before 2026-12-06, {@link DriverSideAveraging}): verify (every update read whole for its
 *   digests), average (the updates streamed in slot order into the float64 sums on the driver), commit
 *   ({@link CheckpointStore#commit}: one state file with its SHA-256, manifest, rename; plus pruning);
 *   <li>executor path ({@link TrainingRounds} today): the averaging stage ({@link ExecutorAveraging}: one task per
 *   key range on Spark {@code local[E]}, each reading its tensors of every update once, checking them as it
 *   averages, writing its part), then commit ({@link CheckpointStore#commitPrepared}: manifest, rename; plus
 *   pruning). Its state is checked bit for bit against the driver path's on the first repeat of each slot count.
 * </ul>
 * Everything runs in one JVM on the local filesystem: the "executors" are task threads of this JVM sharing its
 * cores and page cache; with {@code dir} = {@code minidfs:FOLDER} on an HDFS in the same JVM (one DataNode keeping its
 * blocks under FOLDER), read through the HDFS client. Arguments: {@code dir [slots,...] [repeats] [layers] [rank] [group] [parts,...] [driver|no-driver]
 * [threads]}: the part counts of the executor path ({@code slots}: one per slot, {@code auto}: what
 * {@code --averaging-parts 0} picks, or a number; default {@code slots}), whether to time the driver path too
 * (default yes; without it each part count's state is checked against the first's), and the Spark
 * {@code local[threads]} (default the largest slot count). Prints one line per repeat and the medians. See
 * docs/PERFORMANCE.md, "driver".
 */
public final class RoundTrafficBench {
    private RoundTrafficBench() {}

    /** LLaMA-7B projections: name, input width, output width. */
    private static final String[][] PROJECTIONS = {
        {"self_attn.q_proj", "4096", "4096"}, {"self_attn.k_proj", "4096", "4096"},
        {"self_attn.v_proj", "4096", "4096"}, {"self_attn.o_proj", "4096", "4096"},
        {"mlp.gate_proj", "4096", "11008"}, {"mlp.up_proj", "4096", "11008"}, {"mlp.down_proj", "11008", "4096"},
    };

    public static void main(String[] args) throws java.io.IOException {
        String where = args.length > 0 ? args[0] : "/tmp/round-traffic";
        Configuration hadoop = new Configuration();
        org.apache.hadoop.hdfs.MiniDFSCluster hdfs = null;
        if (where.startsWith("minidfs:")) {
            // Everything on an HDFS in this JVM (one DataNode storing its blocks under the given local folder): the
            // averaging tasks then read the updates through the HDFS client, checksums and all, as on a cluster,
            // not from mapped local files (over loopback, so without a network's bandwidth or latency).
            java.nio.file.Path base = java.nio.file.Path.of(where.substring("minidfs:".length()));
            hadoop.set(org.apache.hadoop.hdfs.MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.resolve("hdfs").toString());
            hadoop.setInt("dfs.replication", 1);
            hdfs = new org.apache.hadoop.hdfs.MiniDFSCluster.Builder(hadoop).numDataNodes(1).build();
            hdfs.waitActive();
            where = hdfs.getURI() + "/round-traffic";
        }
        try {
            run(where, hadoop, args);
        } finally {
            if (hdfs != null) {
                hdfs.shutdown(true);
            }
        }
    }

    private static void run(String where, Configuration hadoop, String[] args) {
        Path dir = new Path(where);
        int[] slotCounts = Arrays.stream((args.length > 1 ? args[1] : "2,4,8").split(",")).mapToInt(Integer::parseInt).toArray();
        int repeats = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        int layers = args.length > 3 ? Integer.parseInt(args[3]) : 32;
        int rank = args.length > 4 ? Integer.parseInt(args[4]) : 64;
        int group = args.length > 5 ? Integer.parseInt(args[5]) : 32;
        // Part counts to time: "slots" is one part per slot (the count before --averaging-parts), "auto" what
        // --averaging-parts 0 picks for this layout and slot count, a number that many parts.
        String[] partsArgs = (args.length > 6 ? args[6] : "slots").split(",");
        boolean driverPath = args.length <= 7 || !args[7].equals("no-driver");
        Storage storage = new Storage(hadoop);
        storage.delete(dir);
        CheckpointStore store = new CheckpointStore(storage, dir, line -> {});
        int maxSlots = Arrays.stream(slotCounts).max().orElseThrow();
        int threads = args.length > 8 ? Integer.parseInt(args[8]) : maxSlots;

        long t0 = System.nanoTime();
        AdapterTensors initial = state(layers, rank, group, -1, 0);
        long parameters = initial.parameterCount();
        CheckpointStore.Committed start = store.commit(0, initial, "plan", "config", null);
        initial = null; // let the heap hold only what the driver holds
        Path updates = store.updatesDir(1);
        storage.mkdirs(updates);
        List<SegmentDigests> digests = new ArrayList<>();
        List<SlotMetrics> metrics = new ArrayList<>();
        for (int s = 0; s < maxSlots; s++) {
            AdapterTensors update = state(layers, rank, group, s, 16);
            long tokens = 60_000 + 1_000L * s;
            digests.add(AdapterStateFile.writeUpdate(storage, new Path(updates, CheckpointStore.updateFileName(s)),
                    "_tmp-slot-" + s, update, Map.of("round", "1", "slot", Integer.toString(s),
                            "target_tokens", Long.toString(tokens), "loss_sum", "0", "steps", "16")));
            metrics.add(new SlotMetrics(s, 0, "bench", "cpu", tokens, 0, 0, digests.get(s)));
        }
        long bytes = storage.length(new Path(updates, CheckpointStore.updateFileName(0)));
        Map<String, long[]> layout = AdapterStateFile.layout(storage, start.stateFiles());
        System.out.printf("LLaMA-7B-shaped adapter: %d layers x 7 projections, r %d, g %d: %,d parameters, %.3f GB per"
                        + " update file (weights + m + v, fp32); wrote the start state and %d updates in %.1f s; %d cores,"
                        + " max heap %.1f GB; Spark local[%d]; load average %.2f%n", layers, rank, group, parameters,
                bytes / 1e9, maxSlots, (System.nanoTime() - t0) / 1e9, Runtime.getRuntime().availableProcessors(),
                Runtime.getRuntime().maxMemory() / 1e9, threads,
                java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());

        // Process CPU time next to the wall clock: on a shared machine the CPU-seconds are the steadier figure.
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[" + threads + "]", "RoundTrafficBench")
                .set("spark.ui.enabled", "false");
        int round = 1;
        try (JavaSparkContext jsc = new JavaSparkContext(conf)) {
            for (int slots : slotCounts) {
                List<Integer> ids = new ArrayList<>();
                for (int s = 0; s < slots; s++) {
                    ids.add(s);
                }
                int[] partCounts = new int[partsArgs.length];
                for (int i = 0; i < partsArgs.length; i++) {
                    partCounts[i] = switch (partsArgs[i]) {
                        case "slots" -> slots;
                        case "auto" -> KeyRanges.count(layout, 0, slots);
                        default -> Integer.parseInt(partsArgs[i]);
                    };
                }
                double[][] driverPhases = new double[repeats][];
                double[][][] executorPhases = new double[partCounts.length][repeats][];
                for (int rep = 0; rep < repeats; rep++) {
                    AdapterTensors reference = null; // the first path's state of this slot count, on repeat 0
                    if (driverPath) {
                        long u0 = os.getProcessCpuTime();
                        long v0 = System.nanoTime();
                        DriverSideAveraging.verify(storage, updates, ids, digests);
                        long v1 = System.nanoTime();
                        UpdateAverager.Averaged avg = DriverSideAveraging.average(storage, store, 1, start, ids);
                        long v2 = System.nanoTime();
                        // Each commit takes the next round number (a committed round is never overwritten) and prunes
                        // the one before it, as keepRounds = 1 would; round 0 stays the start state.
                        CheckpointStore.Committed driverRound = store.commit(round, avg.state(), "plan", "config", null);
                        avg = null;
                        long v3 = System.nanoTime();
                        long u3 = os.getProcessCpuTime();
                        reference = rep == 0 ? store.loadState(driverRound) : null;
                        storage.delete(store.roundDir(round));
                        round++;
                        driverPhases[rep] = new double[] {(v1 - v0) / 1e9, (v2 - v1) / 1e9, (v3 - v2) / 1e9,
                            (v3 - v0) / 1e9, (u3 - u0) / 1e9};
                        System.out.printf("slots %d, repeat %d: DRIVER verify %.2f s, average %.2f s, commit %.2f s,"
                                        + " total %.2f s (CPU %.1f s)%n", slots, rep, driverPhases[rep][0],
                                driverPhases[rep][1], driverPhases[rep][2], driverPhases[rep][3], driverPhases[rep][4]);
                    }
                    for (int pc = 0; pc < partCounts.length; pc++) {
                        int parts = partCounts[pc];
                        long u3 = os.getProcessCpuTime();
                        long v3 = System.nanoTime();
                        ExecutorAveraging.Outcome out = ExecutorAveraging.run(jsc, storage, store, 1, start,
                                metrics.subList(0, slots), parts,
                                AveragingStageResources.decide(jsc.getConf(), 1), FaultPlan.none(), "bench");
                        long v4 = System.nanoTime();
                        CheckpointStore.Committed executorRound = store.commitPrepared(round, out.commitDir(),
                                out.files(), out.step(), "plan", "config", null);
                        long v5 = System.nanoTime();
                        long u5 = os.getProcessCpuTime();
                        round++;
                        String same = "";
                        if (rep == 0) {
                            AdapterTensors state = store.loadState(executorRound);
                            String against = driverPath ? "the driver path's" : "the first part count's";
                            if (reference == null) {
                                reference = state;
                                same = "; the reference state";
                            } else if (!state.bitwiseEquals(reference)) {
                                throw new IllegalStateException(slots + " slots, " + parts + " parts: the state"
                                        + " differs from " + against);
                            } else {
                                same = "; state bit-identical to " + against;
                            }
                        }
                        storage.delete(store.roundDir(round - 1));
                        // One averaging task alone (part 0, in this thread, nothing else of this JVM running): what
                        // one executor spends on the round when each key range has an executor (or a core) of its own.
                        double alone = timeOneTaskAlone(storage, store, start, metrics.subList(0, slots), parts);
                        executorPhases[pc][rep] = new double[] {(v4 - v3) / 1e9, (v5 - v4) / 1e9, (v5 - v3) / 1e9,
                            (u5 - u3) / 1e9, out.slowestMillis() / 1e3, alone, out.files().size()};
                        double[] e = executorPhases[pc][rep];
                        System.out.printf("slots %d, parts %d (%d files), repeat %d: EXECUTORS average %.2f s (slowest"
                                        + " task %.2f s), commit %.3f s, total %.2f s (CPU %.1f s); one task alone %.2f"
                                        + " s%s%n", slots, parts, out.files().size(), rep, e[0], e[4], e[1], e[2], e[3],
                                e[5], same);
                    }
                }
                if (driverPath) {
                    System.out.printf("slots %d MEDIAN: DRIVER verify %.2f s, average %.2f s, commit %.2f s, total %.2f"
                                    + " s, CPU %.1f s; the driver reads %.1f GB, writes %.1f GB%n", slots,
                            median(driverPhases, 0), median(driverPhases, 1), median(driverPhases, 2),
                            median(driverPhases, 3), median(driverPhases, 4), 2 * slots * bytes / 1e9, bytes / 1e9);
                }
                for (int pc = 0; pc < partCounts.length; pc++) {
                    double files = executorPhases[pc][0][6];
                    System.out.printf("slots %d parts %d MEDIAN: EXECUTORS (%.0f tasks) average %.2f s (slowest task"
                                    + " %.2f s), commit %.3f s, total %.2f s, CPU %.1f s; one task alone %.2f s (range"
                                    + " %.2f-%.2f); per task: reads %.0f MB, writes %.0f MB (mean)%n", slots,
                            partCounts[pc], files, median(executorPhases[pc], 0), median(executorPhases[pc], 4),
                            median(executorPhases[pc], 1), median(executorPhases[pc], 2),
                            median(executorPhases[pc], 3), median(executorPhases[pc], 5),
                            min(executorPhases[pc], 5), max(executorPhases[pc], 5),
                            slots * bytes / files / 1e6, bytes / files / 1e6);
                }
            }
        }
        storage.delete(dir);
    }

    /** Seconds for averaging task 0 of {@code parts} run alone in this thread, its part written to a scratch dir. */
    private static double timeOneTaskAlone(Storage storage, CheckpointStore store, CheckpointStore.Committed start,
                                           List<SlotMetrics> slots, int parts) {
        Map<String, long[]> layout = AdapterStateFile.layout(storage, start.stateFiles());
        Path scratch = store.beginCommit(999_999);
        AveragingTask task = new AveragingTask(new org.qalora.quant.io.ShippedHadoopConf(storage.conf()), 1,
                store.updatesDir(1).toString(), slots.stream().map(SlotMetrics::update).toArray(SegmentDigests[]::new),
                layout, KeyRanges.split(layout, parts), scratch.toString(), FaultPlan.none());
        long t0 = System.nanoTime();
        AveragedPart part = task.call(List.of(0).iterator()).next();
        double seconds = (System.nanoTime() - t0) / 1e9;
        storage.delete(scratch);
        if (part.refused()) {
            throw new IllegalStateException(part.refusal());
        }
        return seconds;
    }

    /**
     * A synthetic state in PEFT key order: slot -1 is the start state (B zero, moments zero, as a fresh adapter),
     * slot s a trained update (every value nonzero, v positive), from a SplitMix64 stream seeded by the slot.
     */
    static AdapterTensors state(int layers, int rank, int group, int slot, long step) {
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        long[] seed = {0x9E3779B97F4A7C15L * (slot + 2)};
        for (int l = 0; l < layers; l++) {
            for (String[] p : PROJECTIONS) {
                String prefix = "base_model.model.model.layers." + l + "." + p[0];
                int in = Integer.parseInt(p[1]);
                int out = Integer.parseInt(p[2]);
                tensors.put(prefix + ".lora_A.weight", tensor(new long[] {rank, in / group}, slot, seed, 0.02f));
                tensors.put(prefix + ".lora_B.weight", tensor(new long[] {out, rank}, slot, seed, slot < 0 ? 0 : 0.01f));
            }
        }
        return new AdapterTensors(tensors, step);
    }

    private static AdapterTensors.Tensor tensor(long[] shape, int slot, long[] seed, float scale) {
        int n = (int) AdapterTensors.numel(shape);
        float[] w = new float[n];
        float[] m = new float[n];
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = scale * uniform(seed);
            if (slot >= 0) {
                m[i] = 1e-3f * uniform(seed);
                v[i] = 1e-6f * (1 + uniform(seed));
            }
        }
        return new AdapterTensors.Tensor(shape, w, m, v);
    }

    /** Uniform in [-1, 1) from a SplitMix64 step (fast enough to fill gigabytes). */
    private static float uniform(long[] seed) {
        long z = (seed[0] += 0x9E3779B97F4A7C15L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 40) * 0x1.0p-23f - 1;
    }

    private static double min(double[][] rows, int column) {
        return Arrays.stream(rows).mapToDouble(r -> r[column]).min().orElseThrow();
    }

    private static double max(double[][] rows, int column) {
        return Arrays.stream(rows).mapToDouble(r -> r[column]).max().orElseThrow();
    }

    private static double median(double[][] rows, int column) {
        double[] v = Arrays.stream(rows).mapToDouble(r -> r[column]).sorted().toArray();
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }
}
