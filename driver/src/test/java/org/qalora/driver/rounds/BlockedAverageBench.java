package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.quant.kernels.KernelPool;

/**
 * The block size of {@link BlockedPartAverage}, swept in one JVM: {@link UpdateAverager#averageKeys} over key range 0
 * of {@code parts} at LLaMA-7B adapter shapes from {@code slots} mapped update files (as {@link RoundTrafficBench}
 * writes them; the driver's unchecked reads, so the CRC32C is not in these figures), each block size in turn per
 * repeat (so the box's load falls on all alike); block 0 = the simple whole-tensor path (the sources hide their
 * mapping). Every result is compared bit for bit with the first. Prints wall and process CPU seconds per run and the
 * medians. Arguments: {@code dir [slots] [parts] [repeats] [blocks, comma-separated] [layers]}.
 */
public final class BlockedAverageBench {
    private BlockedAverageBench() {}

    public static void main(String[] args) throws Exception {
        Path dir = new Path(args.length > 0 ? args[0] : "/tmp/blocked-average");
        int slots = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int parts = args.length > 2 ? Integer.parseInt(args[2]) : 4;
        int repeats = args.length > 3 ? Integer.parseInt(args[3]) : 5;
        int[] blocks = java.util.Arrays.stream((args.length > 4 ? args[4] : "0,4096,16384,65536").split(","))
                .mapToInt(Integer::parseInt).toArray();
        int layers = args.length > 5 ? Integer.parseInt(args[5]) : 32;
        Storage storage = new Storage(new Configuration());
        storage.delete(dir);
        storage.mkdirs(dir);
        List<AdapterStateFile.Reader> open = new ArrayList<>();
        for (int s = 0; s < slots; s++) {
            Path f = new Path(dir, CheckpointStore.updateFileName(s));
            AdapterStateFile.writeUpdate(storage, f, "_tmp-slot-" + s, RoundTrafficBench.state(layers, 64, 32, s, 16),
                    Map.of("target_tokens", Long.toString(60_000 + 1_000L * s)));
            open.add(AdapterStateFile.open(storage, f));
        }
        Map<String, long[]> layout = new java.util.LinkedHashMap<>();
        for (String k : open.get(0).keys()) {
            layout.put(k, open.get(0).shape(k));
        }
        List<String> range = KeyRanges.split(layout, parts).get(0);
        System.out.printf("%d slots, key range 0 of %d: %d keys, %.0f MB of state; kernel threads %d; %s%n", slots,
                parts, range.size(), KeyRanges.stateBytes(sub(layout, range)) / 1e6, KernelPool.shared().threads(),
                jdk.incubator.vector.DoubleVector.SPECIES_PREFERRED);
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        double[][] wall = new double[blocks.length][repeats];
        double[][] cpu = new double[blocks.length][repeats];
        UpdateAverager.KeysAveraged first = null;
        for (int rep = 0; rep < repeats; rep++) {
            for (int b = 0; b < blocks.length; b++) {
                int block = blocks[b];
                UpdateAverager averager = new UpdateAverager(layout, KernelPool.shared(), Math.max(1, block));
                for (int s = 0; s < slots; s++) {
                    AdapterStateFile.Reader r = open.get(s);
                    if (block == 0) {
                        averager.add(s, (key, part) -> part == 0 ? r.weights(key) : part == 1 ? r.adamM(key)
                                : r.adamV(key), 60_000 + 1_000L * s, layout);
                    } else {
                        averager.add(s, r, 60_000 + 1_000L * s);
                    }
                }
                long t0 = System.nanoTime();
                long c0 = os.getProcessCpuTime();
                UpdateAverager.KeysAveraged out = averager.averageKeys(range);
                wall[b][rep] = (System.nanoTime() - t0) / 1e9;
                cpu[b][rep] = (os.getProcessCpuTime() - c0) / 1e9;
                if (first == null) {
                    first = out;
                } else if (!same(first, out)) {
                    throw new IllegalStateException("block " + block + " changed the result");
                }
                System.out.printf("repeat %d block %6d: %.3f s (%.3f CPU-s)%n", rep, block, wall[b][rep], cpu[b][rep]);
            }
        }
        for (int b = 0; b < blocks.length; b++) {
            System.out.printf("block %6d: median %.3f s (%.3f CPU-s)%n", blocks[b], median(wall[b]), median(cpu[b]));
        }
        open.forEach(AdapterStateFile.Reader::close);
        storage.delete(dir);
    }

    private static boolean same(UpdateAverager.KeysAveraged a, UpdateAverager.KeysAveraged b) {
        for (String k : a.tensors().keySet()) {
            var x = a.tensors().get(k);
            var y = b.tensors().get(k);
            if (!java.util.Arrays.equals(x.weights(), y.weights()) || !java.util.Arrays.equals(x.adamM(), y.adamM())
                    || !java.util.Arrays.equals(x.adamV(), y.adamV())) {
                return false;
            }
        }
        return java.util.Arrays.deepEquals(a.stats().squares(), b.stats().squares())
                && java.util.Arrays.equals(a.stats().meanSquares(), b.stats().meanSquares())
                && java.util.Arrays.equals(a.stats().discordance(), b.stats().discordance());
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        java.util.Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static Map<String, long[]> sub(Map<String, long[]> layout, List<String> keys) {
        Map<String, long[]> m = new java.util.LinkedHashMap<>();
        keys.forEach(k -> m.put(k, layout.get(k)));
        return m;
    }
}
