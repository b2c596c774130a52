package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.kernels.KernelPool;

/**
 * The blocked sums ({@link BlockedPartAverage}) against a plain whole-tensor reference written here, bit for bit:
 * the state, each slot's sum w x^2 and each key's sum xbar^2 ({@link UpdateAverager.KeyStats}), for block sizes
 * that divide no tensor, with slot counts on both sides of the four chains the squares run side by side; the
 * discordance against the simple path's (updates in memory). And a byte flipped in the middle block of one slot's
 * tensor still refuses the update, naming the slot, the file and the tensor, before any part file is written.
 */
class BlockedPartAverageTest {
    private static final Storage STORAGE = new Storage(new Configuration());
    /** A measured module (A [5, 70], B [100, 5]: both wider than the sample grid) and a 39 x 1031 plain tensor. */
    private static final Map<String, long[]> LAYOUT = new LinkedHashMap<>();

    static {
        LAYOUT.put("m.lora_A.weight", new long[] {5, 70});
        LAYOUT.put("m.lora_B.weight", new long[] {100, 5});
        LAYOUT.put("plain.weight", new long[] {39, 1031}); // 40209 elements: > 2 default blocks, no multiple of one
    }

    @TempDir
    java.nio.file.Path tmp;

    private static AdapterTensors randomState(int seed) {
        Random r = new Random(seed);
        Map<String, AdapterTensors.Tensor> t = new LinkedHashMap<>();
        LAYOUT.forEach((k, shape) -> {
            int n = (int) AdapterTensors.numel(shape);
            float[][] parts = new float[3][n];
            for (float[] p : parts) {
                for (int i = 0; i < n; i++) {
                    // Exponents 60 apart, so the float64 sums round (narrower ones add exactly, in any order) and
                    // a reordered or fused sum would show in the last bits.
                    p[i] = (float) (r.nextGaussian() * Math.pow(2, r.nextInt(60) - 30));
                }
            }
            t.put(k, new AdapterTensors.Tensor(shape.clone(), parts[0], parts[1], parts[2]));
        });
        return new AdapterTensors(t, 16);
    }

    /** The reference: per part, element by element over the slots in slot order; the squares over the elements. */
    private record Reference(AdapterTensors state, double[][] squares, double[] meanSquares) {}

    private static Reference reference(List<AdapterTensors> updates, long[] tokens) {
        double total = 0;
        for (long t : tokens) {
            total += t;
        }
        Map<String, AdapterTensors.Tensor> out = new LinkedHashMap<>();
        double[][] squares = new double[LAYOUT.size()][updates.size()];
        double[] meanSquares = new double[LAYOUT.size()];
        int key = 0;
        for (String k : LAYOUT.keySet()) {
            int n = (int) AdapterTensors.numel(LAYOUT.get(k));
            float[][] mean = new float[3][n];
            for (int part = 0; part < 3; part++) {
                double[] sum = new double[n];
                for (int s = 0; s < updates.size(); s++) {
                    AdapterTensors.Tensor t = updates.get(s).tensor(k);
                    float[] x = part == 0 ? t.weights() : part == 1 ? t.adamM() : t.adamV();
                    double w = tokens[s];
                    for (int i = 0; i < n; i++) {
                        sum[i] += w * x[i];
                    }
                    if (part == 0) {
                        double sq = 0;
                        for (int i = 0; i < n; i++) {
                            sq += w * x[i] * x[i];
                        }
                        squares[key][s] = sq;
                    }
                }
                double ms = 0;
                for (int i = 0; i < n; i++) {
                    double m = sum[i] / total;
                    ms += m * m;
                    mean[part][i] = (float) m;
                }
                if (part == 0) {
                    meanSquares[key] = ms;
                }
            }
            out.put(k, new AdapterTensors.Tensor(LAYOUT.get(k).clone(), mean[0], mean[1], mean[2]));
            key++;
        }
        return new Reference(new AdapterTensors(out, 16), squares, meanSquares);
    }

    private List<AdapterStateFile.Reader> writeAndOpen(List<AdapterTensors> updates, String name) {
        List<AdapterStateFile.Reader> files = new ArrayList<>();
        for (int s = 0; s < updates.size(); s++) {
            Path f = new Path(tmp.resolve(name + "-" + s).toString());
            AdapterStateFile.write(STORAGE, f, "_tmp-" + s, updates.get(s), Map.of());
            files.add(AdapterStateFile.open(STORAGE, f));
        }
        return files;
    }

    @Test
    void blockedSumsAreTheReferenceBitForBitWhateverTheBlockSlotCountOrThreads() {
        // Weights with more than 29 significant bits, so w * x rounds: with fewer the product of a float is exact,
        // and an fma would give the same bits as the multiply and the add, which the test could then not tell.
        long[] allTokens = {7, (1L << 40) + 15, 13, 3_000_000_019L, 65_537, 3};
        for (int slots : new int[] {1, 2, 4, 5, 6}) {
            long[] tokens = java.util.Arrays.copyOf(allTokens, slots);
            List<AdapterTensors> updates = new ArrayList<>();
            for (int s = 0; s < slots; s++) {
                updates.add(randomState(100 * slots + s));
            }
            Reference ref = reference(updates, tokens);
            List<AdapterStateFile.Reader> files = writeAndOpen(updates, "slots" + slots);
            try (KernelPool one = new KernelPool(1); KernelPool three = new KernelPool(3)) {
                UpdateAverager memory = new UpdateAverager(LAYOUT, one);
                for (int s = 0; s < slots; s++) {
                    memory.add(s, updates.get(s), tokens[s]);
                }
                UpdateAverager.KeysAveraged simple = memory.averageKeys(List.copyOf(LAYOUT.keySet()));
                for (int block : new int[] {1, 7, 64, 1000, 16_383, BlockedPartAverage.DEFAULT_BLOCK, 1 << 20}) {
                    for (KernelPool pool : new KernelPool[] {one, three}) {
                        String what = slots + " slots, block " + block + ", " + pool.threads() + " threads";
                        UpdateAverager fromFiles = new UpdateAverager(LAYOUT, pool, block);
                        for (int s = 0; s < slots; s++) {
                            fromFiles.add(s, files.get(s), tokens[s]);
                        }
                        UpdateAverager.KeysAveraged blocked = fromFiles.averageKeys(List.copyOf(LAYOUT.keySet()));
                        assertTrue(new AdapterTensors(blocked.tensors(), 16).bitwiseEquals(ref.state()), what);
                        UpdateAverager.KeyStats st = blocked.stats();
                        for (int k = 0; k < LAYOUT.size(); k++) {
                            assertArrayEquals(bits(ref.squares()[k]), bits(st.squares()[k]), what + ", key " + k);
                        }
                        assertArrayEquals(bits(ref.meanSquares()), bits(st.meanSquares()), what);
                        assertArrayEquals(new int[] {0}, st.pairIndex(), what);
                        assertArrayEquals(bits(simple.stats().discordance()), bits(st.discordance()), what);
                        assertNotEquals(0.0, st.discordance()[0], what);
                    }
                }
            } finally {
                files.forEach(AdapterStateFile.Reader::close);
            }
        }
    }

    /** The comparison can fail: a slot's weight changed by one token, or two slots swapped, changes the bits. */
    @Test
    void theComparisonSeesAChangedWeightOrSlotOrder() {
        long[] tokens = {7, 13, 29};
        List<AdapterTensors> updates = List.of(randomState(1), randomState(2), randomState(3));
        Reference ref = reference(updates, tokens);
        List<AdapterStateFile.Reader> files = writeAndOpen(updates, "change");
        try (KernelPool one = new KernelPool(1)) {
            UpdateAverager reweighted = new UpdateAverager(LAYOUT, one, 1000);
            UpdateAverager swapped = new UpdateAverager(LAYOUT, one, 1000);
            for (int s = 0; s < 3; s++) {
                reweighted.add(s, files.get(s), tokens[s] + (s == 2 ? 1 : 0));
                // Slots 1 and 2 (0 + a + b is b + a + 0 exactly: swapping the first two would change no bit).
                int from = s == 0 ? 0 : 3 - s;
                swapped.add(s, files.get(from), tokens[from]);
            }
            UpdateAverager.KeysAveraged r = reweighted.averageKeys(List.copyOf(LAYOUT.keySet()));
            assertFalse(new AdapterTensors(r.tensors(), 16).bitwiseEquals(ref.state()));
            // A reordered float64 sum shows in the last bits of the sums (the float32 state rounds most of it away).
            r = swapped.averageKeys(List.copyOf(LAYOUT.keySet()));
            assertFalse(java.util.Arrays.equals(bits(ref.meanSquares()), bits(r.stats().meanSquares())));
        } finally {
            files.forEach(AdapterStateFile.Reader::close);
        }
    }

    @Test
    void aByteFlippedInTheMiddleBlockOfATensorIsRefusedNamingSlotFileAndTensor() throws Exception {
        long[] tokens = {11, 5, 23};
        CheckpointStore store = new CheckpointStore(STORAGE, new Path(tmp.resolve("store").toString()), line -> {});
        Path updatesDir = store.updatesDir(1);
        STORAGE.mkdirs(updatesDir);
        SegmentDigests[] digests = new SegmentDigests[tokens.length];
        List<AdapterTensors> updates = new ArrayList<>();
        for (int s = 0; s < tokens.length; s++) {
            updates.add(randomState(40 + s));
            digests[s] = AdapterStateFile.writeUpdate(STORAGE, new Path(updatesDir, CheckpointStore.updateFileName(s)),
                    "_tmp-slot-" + s, updates.get(s), Map.of("target_tokens", Long.toString(tokens[s])));
        }
        List<List<String>> ranges = List.of(List.copyOf(LAYOUT.keySet()));

        // Unchanged files: the task's part is the reference (tensor "plain.weight" spans three default blocks).
        AveragedPart good = runTask(digests, ranges, updatesDir, "good");
        assertFalse(good.refused(), good.refusal());
        Reference ref = reference(updates, tokens);
        assertTrue(AdapterStateFile.read(STORAGE, new Path(tmp.resolve("good").toString(), good.file())).state()
                .bitwiseEquals(ref.state()));
        assertArrayEquals(bits(ref.meanSquares()), bits(good.stats().meanSquares()));

        // One bit of slot 1's Adam m of "plain.weight", element 20000: in its second block of 16384.
        java.nio.file.Path slot1 = java.nio.file.Path.of(new Path(updatesDir, CheckpointStore.updateFileName(1)).toUri()
                .getPath());
        byte[] bytes = Files.readAllBytes(slot1);
        int at = indexOf(bytes, updates.get(1).tensor("plain.weight").adamM(), 20_000);
        bytes[at + 1] ^= 0x10;
        Files.write(slot1, bytes);
        AveragedPart bad = runTask(digests, ranges, updatesDir, "bad");
        assertTrue(bad.refused());
        assertEquals(1, bad.refusedSlot());
        String tensor = AdapterStateFile.Reader.tensorName("plain.weight", 1);
        assertTrue(bad.refusal().startsWith("slot 1's update ") && bad.refusal().contains(
                CheckpointStore.updateFileName(1)) && bad.refusal().contains("tensor '" + tensor + "'")
                && bad.refusal().contains("does not match the CRC32C its task reported ("
                + digests[1].of(tensor) + ")"), bad.refusal());
        try (var left = Files.list(tmp.resolve("bad"))) {
            assertEquals(List.of(), left.toList(), "no part file, finished or temporary");
        }
    }

    private AveragedPart runTask(SegmentDigests[] digests, List<List<String>> ranges, Path updatesDir, String out)
            throws Exception {
        Files.createDirectories(tmp.resolve(out));
        AveragingTask task = new AveragingTask(new ShippedHadoopConf(STORAGE.conf()), 1, updatesDir.toString(),
                digests, LAYOUT, ranges, tmp.resolve(out).toString(), FaultPlan.none());
        return task.call(List.of(0).iterator()).next();
    }

    /** Where float {@code values[from]} and the seven after it lie, little-endian, in {@code file} (exactly once). */
    private static int indexOf(byte[] file, float[] values, int from) {
        ByteBuffer want = ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 8; i++) {
            want.putFloat(values[from + i]);
        }
        byte[] w = want.array();
        int found = -1;
        for (int i = 0; i + w.length <= file.length; i++) {
            if (java.util.Arrays.equals(file, i, i + w.length, w, 0, w.length)) {
                assertEquals(-1, found, "the values occur twice in the file");
                found = i;
            }
        }
        assertNotEquals(-1, found, "values not found in the file");
        return found;
    }

    private static long[] bits(double[] v) {
        long[] b = new long[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = Double.doubleToRawLongBits(v[i]);
        }
        return b;
    }
}
