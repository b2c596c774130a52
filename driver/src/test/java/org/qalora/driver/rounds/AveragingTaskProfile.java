package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.quant.kernels.KernelPool;

/**
 * Where one averaging task's time goes (issue 13 item 8): part 0 of {@code parts} at LLaMA-7B adapter shapes over
 * {@code slots} synthetic updates (as {@link RoundTrafficBench} writes them), phase by phase, each timed alone in
 * this thread (the kernel pool as an averaging task has it): read + CRC32C of its tensors of every update; the same
 * plus decoding to floats; the whole {@link UpdateAverager#averageKeys} (read, check, sum, round, the measures);
 * encoding its part file with SHA-256 to nowhere; {@link AdapterStateFile#write} (encode, SHA-256, write, hsync,
 * rename): those two phases one after the other are what the task did before 2026-12-06 20:00 UTC; then the whole
 * {@link AveragingTask}, which writes while it averages. Arguments: {@code dir [slots] [parts] [repeats] [layers]
 * [rank] [group]} (the shape defaults to LLaMA-7B's 32 layers, r 64, g 32; a small one lets bin/gpu-pack-spark
 * record and check the classes this profile loads in seconds).
 */
public final class AveragingTaskProfile {
    private AveragingTaskProfile() {}

    public static void main(String[] args) throws Exception {
        Path dir = new Path(args.length > 0 ? args[0] : "/tmp/averaging-profile");
        int slots = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int parts = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int repeats = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        int layers = args.length > 4 ? Integer.parseInt(args[4]) : 32;
        int rank = args.length > 5 ? Integer.parseInt(args[5]) : 64;
        int group = args.length > 6 ? Integer.parseInt(args[6]) : 32;
        Storage storage = new Storage(new Configuration());
        storage.delete(dir);
        CheckpointStore store = new CheckpointStore(storage, dir, line -> {});
        CheckpointStore.Committed start = store.commit(0, RoundTrafficBench.state(layers, rank, group, -1, 0), "plan",
                "config", null);
        Path updates = store.updatesDir(1);
        storage.mkdirs(updates);
        SegmentDigests[] digests = new SegmentDigests[slots];
        for (int s = 0; s < slots; s++) {
            digests[s] = AdapterStateFile.writeUpdate(storage, new Path(updates, CheckpointStore.updateFileName(s)),
                    "_tmp-slot-" + s, RoundTrafficBench.state(layers, rank, group, s, 16), Map.of("target_tokens",
                            Long.toString(60_000 + 1_000L * s)));
        }
        Map<String, long[]> layout = AdapterStateFile.layout(storage, start.stateFiles());
        List<List<String>> ranges = KeyRanges.split(layout, parts);
        List<String> range = ranges.get(0);
        long rangeBytes = KeyRanges.stateBytes(subset(layout, range));
        System.out.printf("%d slots, part 0 of %d: %d keys, %.0f MB of state (read %d x that, write it once); kernel"
                        + " threads %d; load average %.2f%n", slots, ranges.size(), range.size(), rangeBytes / 1e6,
                slots, KernelPool.shared().threads(),
                java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        // Process CPU time next to the wall clock: on a shared machine the CPU-seconds are the steadier figure.
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        for (int rep = 0; rep < repeats; rep++) {
            List<AdapterStateFile.Reader> open = new ArrayList<>();
            for (int s = 0; s < slots; s++) {
                open.add(AdapterStateFile.open(storage, new Path(updates, CheckpointStore.updateFileName(s))));
            }
            long t0 = System.nanoTime();
            long c0 = os.getProcessCpuTime();
            KernelPool.shared().run(range.size(), t -> {
                for (AdapterStateFile.Reader r : open) {
                    for (int p = 0; p < 3; p++) {
                        r.withRawBytes(AdapterStateFile.Reader.tensorName(range.get(t), p),
                                b -> SegmentDigests.crc32c(b.asByteBuffer()));
                    }
                }
            });
            long t1 = System.nanoTime();
            long c1 = os.getProcessCpuTime();
            KernelPool.shared().run(range.size(), t -> {
                for (AdapterStateFile.Reader r : open) {
                    for (int p = 0; p < 3; p++) {
                        r.withRawBytes(AdapterStateFile.Reader.tensorName(range.get(t), p), b -> {
                            SegmentDigests.crc32c(b.asByteBuffer());
                            return b.toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED
                                    .withOrder(java.nio.ByteOrder.LITTLE_ENDIAN));
                        });
                    }
                }
            });
            long t2 = System.nanoTime();
            long c2 = os.getProcessCpuTime();
            UpdateAverager averager = new UpdateAverager(layout, KernelPool.shared());
            for (int s = 0; s < slots; s++) {
                averager.add(s, open.get(s), 60_000 + 1_000L * s);
            }
            UpdateAverager.KeysAveraged averaged = averager.averageKeys(range);
            long t3 = System.nanoTime();
            long c3 = os.getProcessCpuTime();
            open.forEach(AdapterStateFile.Reader::close);
            AdapterTensors state = new AdapterTensors(averaged.tensors(), 16);
            Map<String, String> meta = Map.of("round", "1", "part", "0");
            long t4 = System.nanoTime();
            long c4 = os.getProcessCpuTime();
            AdapterStateFile.sha256Of(state, meta);
            long t5 = System.nanoTime();
            long c5 = os.getProcessCpuTime();
            Path scratch = store.beginCommit(999_999);
            AdapterStateFile.write(storage, new Path(scratch, "part"), "_tmp-part", state, meta);
            long t6 = System.nanoTime();
            long c6 = os.getProcessCpuTime();
            storage.delete(scratch);
            state = null;
            averaged = null;
            Path scratch2 = store.beginCommit(999_998);
            AveragingTask task = new AveragingTask(new org.qalora.quant.io.ShippedHadoopConf(storage.conf()), 1,
                    updates.toString(), digests, layout, ranges, scratch2.toString(), FaultPlan.none());
            long t7 = System.nanoTime();
            long c7 = os.getProcessCpuTime();
            AveragedPart part = task.call(List.of(0).iterator()).next();
            long t8 = System.nanoTime();
            long c8 = os.getProcessCpuTime();
            storage.delete(scratch2);
            if (part.refused()) {
                throw new IllegalStateException(part.refusal());
            }
            System.out.printf("repeat %d, wall (CPU) s: read+CRC32C %.2f (%.2f) | read+CRC32C+decode %.2f (%.2f) |"
                            + " averageKeys (read, check, decode, sum, round, measures) %.2f (%.2f) | encode+SHA-256"
                            + " %.2f (%.2f) | write (encode, SHA-256, write, hsync, rename) %.2f (%.2f) | so averaging"
                            + " then writing %.2f (%.2f) | the whole task (averaging while writing) %.2f (%.2f)%n", rep,
                    (t1 - t0) / 1e9, (c1 - c0) / 1e9, (t2 - t1) / 1e9, (c2 - c1) / 1e9, (t3 - t2) / 1e9,
                    (c3 - c2) / 1e9, (t5 - t4) / 1e9, (c5 - c4) / 1e9, (t6 - t5) / 1e9, (c6 - c5) / 1e9,
                    (t3 - t2 + t6 - t5) / 1e9, (c3 - c2 + c6 - c5) / 1e9, (t8 - t7) / 1e9, (c8 - c7) / 1e9);
        }
        storage.delete(dir);
    }

    private static Map<String, long[]> subset(Map<String, long[]> layout, List<String> keys) {
        Map<String, long[]> m = new LinkedHashMap<>();
        keys.forEach(k -> m.put(k, layout.get(k)));
        return m;
    }
}
