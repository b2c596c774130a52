package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.kernels.KernelPool;

class UpdateAveragerTest {
    private static final String A = "m.lora_A.weight";
    private static final String B = "m.lora_B.weight";

    /** A [1, 2] and B [2, 1] with the given values; moments = weights * 10 and * 100. */
    private static AdapterTensors state(float a0, float a1, float b0, float b1) {
        Map<String, AdapterTensors.Tensor> t = new LinkedHashMap<>();
        t.put(A, tensor(new long[] {1, 2}, new float[] {a0, a1}));
        t.put(B, tensor(new long[] {2, 1}, new float[] {b0, b1}));
        return new AdapterTensors(t, 5);
    }

    private static AdapterTensors.Tensor tensor(long[] shape, float[] w) {
        float[] m = new float[w.length];
        float[] v = new float[w.length];
        for (int i = 0; i < w.length; i++) {
            m[i] = w[i] * 10;
            v[i] = w[i] * 100;
        }
        return new AdapterTensors.Tensor(shape, w, m, v);
    }

    @Test
    void averagesWeightsAndMomentsByTokens() {
        UpdateAverager avg = new UpdateAverager(state(0, 0, 0, 0));
        avg.add(0, state(1, 2, 3, 4), 1);
        avg.add(1, state(4, 8, 6, 10), 3);
        UpdateAverager.Averaged r = avg.finish(8);
        // (1*1 + 3*4)/4 = 3.25, (2 + 24)/4 = 6.5, (3 + 18)/4 = 5.25, (4 + 30)/4 = 8.5
        assertArrayEquals(new float[] {3.25f, 6.5f}, r.state().tensor(A).weights());
        assertArrayEquals(new float[] {5.25f, 8.5f}, r.state().tensor(B).weights());
        assertArrayEquals(new float[] {32.5f, 65f}, r.state().tensor(A).adamM());
        assertArrayEquals(new float[] {525f, 850f}, r.state().tensor(B).adamV());
        assertEquals(8, r.state().step());
        assertEquals(4, r.totalTokens());
        assertEquals(1, r.modulesMeasured());
    }

    @Test
    void discordanceIsZeroWhenSlotsAgreeAndMatchesAHandComputation() {
        UpdateAverager same = new UpdateAverager(state(0, 0, 0, 0));
        same.add(0, state(1, 2, 3, 4), 2);
        same.add(1, state(1, 2, 3, 4), 5);
        UpdateAverager.Averaged s = same.finish(1);
        assertEquals(0.0, s.maxFactorDiscordance(), 1e-12);
        assertEquals(0.0, s.slotSpread(), 1e-12);

        UpdateAverager diff = new UpdateAverager(state(0, 0, 0, 0));
        diff.add(0, state(1, 0, 1, 0), 1); // B A = [[1, 0], [0, 0]]
        diff.add(1, state(0, 1, 0, 1), 1); // B A = [[0, 0], [0, 1]]
        UpdateAverager.Averaged d = diff.finish(1);
        // avg(BA) = [[.5, 0], [0, .5]]; avg(B) avg(A) = [.5, .5]^T [.5, .5] = all .25
        // |diff|_F = sqrt(4 * .0625) = .5; |avg(BA)|_F = sqrt(.5); ratio = .7071
        assertEquals(Math.sqrt(0.5), d.maxFactorDiscordance(), 1e-9);
        // weights: slot0 (1,0,1,0), slot1 (0,1,0,1), mean (.5,.5,.5,.5): rms distance 1, |mean| = 1
        assertEquals(1.0, d.slotSpread(), 1e-9);
    }

    /**
     * A module larger than the sample grid (B A [70, 50]) is measured on the evenly spaced rows i*70/32 and columns
     * i*50/32 only: the measure equals a reference computed on those entries, and changing B's row 1 (not sampled)
     * leaves it as it was, while changing row 2 (sampled) moves it.
     */
    @Test
    void discordanceOfABigModuleIsTheReferenceOnTheSampledGrid() {
        int out = 70, rank = 3, cols = 50;
        Random rnd = new Random(11);
        float[][] as = new float[2][rank * cols];
        float[][] bs = new float[2][out * rank];
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < as[s].length; i++) as[s][i] = (float) rnd.nextGaussian();
            for (int i = 0; i < bs[s].length; i++) bs[s][i] = (float) rnd.nextGaussian();
        }
        long[] tokens = {3, 5};
        double want = sampledReference(as, bs, tokens, out, rank, cols);
        assertEquals(want, bigModuleDiscordance(as, bs, tokens, out, rank, cols), 1e-12);
        assertTrue(want > 0.01, "the slots disagree");
        bs[1][1 * rank] += 5; // row 1 is not on the grid
        assertEquals(want, bigModuleDiscordance(as, bs, tokens, out, rank, cols), 1e-12);
        bs[1][2 * rank] += 5; // row 2 is
        assertNotEquals(want, bigModuleDiscordance(as, bs, tokens, out, rank, cols), 1e-6);
    }

    private static double bigModuleDiscordance(float[][] as, float[][] bs, long[] tokens, int out, int rank, int cols) {
        UpdateAverager avg = null;
        for (int s = 0; s < as.length; s++) {
            Map<String, AdapterTensors.Tensor> t = new LinkedHashMap<>();
            t.put(A, tensor(new long[] {rank, cols}, as[s]));
            t.put(B, tensor(new long[] {out, rank}, bs[s]));
            AdapterTensors state = new AdapterTensors(t, 1);
            if (avg == null) {
                avg = new UpdateAverager(state);
            }
            avg.add(s, state, tokens[s]);
        }
        return avg.finish(1).maxFactorDiscordance();
    }

    /** |avg(BA) - avg(B) avg(A)|_F / |avg(BA)|_F over rows i*out/32 and columns i*cols/32, written out plainly. */
    private static double sampledReference(float[][] as, float[][] bs, long[] tokens, int out, int rank, int cols) {
        double total = tokens[0] + tokens[1];
        double diff = 0, norm = 0;
        for (int oi = 0; oi < 32; oi++) {
            int o = oi * out / 32;
            for (int ci = 0; ci < 32; ci++) {
                int c = ci * cols / 32;
                double avgProduct = 0, avgB_avgA = 0;
                for (int j = 0; j < rank; j++) {
                    double meanA = 0, meanB = 0;
                    for (int s = 0; s < 2; s++) {
                        avgProduct += tokens[s] * (double) bs[s][o * rank + j] * as[s][j * cols + c] / total;
                        meanA += tokens[s] * (double) as[s][j * cols + c] / total;
                        meanB += tokens[s] * (double) bs[s][o * rank + j] / total;
                    }
                    avgB_avgA += meanB * meanA;
                }
                diff += (avgProduct - avgB_avgA) * (avgProduct - avgB_avgA);
                norm += avgProduct * avgProduct;
            }
        }
        return Math.sqrt(diff / norm);
    }

    @Test
    void refusesOutOfOrderSlotsAndEmptySlots() {
        UpdateAverager avg = new UpdateAverager(state(0, 0, 0, 0));
        assertThrows(IllegalStateException.class, () -> avg.add(1, state(1, 1, 1, 1), 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> avg.add(0, state(1, 1, 1, 1), 0));
        assertEquals(true, e.getMessage().contains("slot 0 trained 0 target tokens"));
    }

    @Test
    void resultDoesNotDependOnAnythingButSlotOrderAndValues() {
        UpdateAverager x = new UpdateAverager(state(0, 0, 0, 0));
        UpdateAverager y = new UpdateAverager(state(0, 0, 0, 0));
        for (UpdateAverager u : new UpdateAverager[] {x, y}) {
            u.add(0, state(0.1f, 0.2f, 0.3f, 0.4f), 7);
            u.add(1, state(0.7f, 0.6f, 0.5f, 0.4f), 11);
            u.add(2, state(1e-7f, 3f, -2f, 0.25f), 13);
        }
        assertEquals(true, x.finish(3).state().bitwiseEquals(y.finish(3).state()));
    }

    @TempDir
    Path dir;

    /** Three LoRA modules of different shapes with random weights and moments, one stream per slot. */
    private static AdapterTensors randomState(int slot) {
        Random rnd = new Random(100 + slot);
        Map<String, AdapterTensors.Tensor> t = new LinkedHashMap<>();
        int[][] modules = {{3, 5, 7}, {4, 9, 2}, {2, 3, 11}}; // rank, cols, out
        for (int i = 0; i < modules.length; i++) {
            int r = modules[i][0];
            t.put("l" + i + ".lora_A.weight", random(new long[] {r, modules[i][1]}, rnd));
            t.put("l" + i + ".lora_B.weight", random(new long[] {modules[i][2], r}, rnd));
        }
        return new AdapterTensors(t, 9);
    }

    private static AdapterTensors.Tensor random(long[] shape, Random rnd) {
        int n = (int) AdapterTensors.numel(shape);
        float[][] p = new float[3][n];
        for (float[] a : p) {
            for (int i = 0; i < n; i++) {
                a[i] = (float) rnd.nextGaussian() * (rnd.nextInt(5) == 0 ? 1e-6f : 0.3f);
            }
        }
        return new AdapterTensors.Tensor(shape, p[0], p[1], p[2]);
    }

    /**
     * The parallel averager against a plain sequential pass written here (slot after slot into float64 sums, divided
     * and rounded once: the averager before 2026-12-06), bit for bit, on one thread and on three, from memory and
     * from update files read tensor by tensor; a dropped slot or a swapped slot order is caught.
     */
    @Test
    void parallelAverageIsBitIdenticalToASequentialPassOverTheSlots() {
        long[] tokens = {7, 1_000_003, 13, 29};
        List<AdapterTensors> updates = new ArrayList<>();
        for (int s = 0; s < tokens.length; s++) {
            updates.add(randomState(s));
        }
        AdapterTensors expected = sequentialAverage(updates, tokens);
        Storage storage = new Storage(new Configuration());
        List<AdapterStateFile.Reader> files = new ArrayList<>();
        for (int s = 0; s < tokens.length; s++) {
            org.apache.hadoop.fs.Path f = new org.apache.hadoop.fs.Path(dir.resolve("slot-" + s).toString());
            AdapterStateFile.write(storage, f, "_tmp-" + s, updates.get(s), Map.of());
            files.add(AdapterStateFile.open(storage, f));
        }
        try (KernelPool one = new KernelPool(1); KernelPool three = new KernelPool(3)) {
            for (KernelPool pool : new KernelPool[] {one, three}) {
                UpdateAverager memory = new UpdateAverager(layout(updates.get(0)), pool);
                UpdateAverager fromFiles = new UpdateAverager(layout(updates.get(0)), pool);
                for (int s = 0; s < tokens.length; s++) {
                    memory.add(s, updates.get(s), tokens[s]);
                    fromFiles.add(s, files.get(s), tokens[s]);
                }
                UpdateAverager.Averaged a = memory.finish(9);
                UpdateAverager.Averaged b = fromFiles.finish(9);
                assertEquals(true, a.state().bitwiseEquals(expected), pool.threads() + " threads, in memory");
                assertEquals(true, b.state().bitwiseEquals(expected), pool.threads() + " threads, from files");
                assertEquals(a.maxFactorDiscordance(), b.maxFactorDiscordance());
                assertEquals(a.slotSpread(), b.slotSpread());
                assertEquals(3, a.modulesMeasured());
            }
            UpdateAverager swapped = new UpdateAverager(layout(updates.get(0)), three);
            UpdateAverager dropped = new UpdateAverager(layout(updates.get(0)), three);
            for (int s = 0; s < tokens.length; s++) {
                swapped.add(s, updates.get(s == 0 ? 1 : s == 1 ? 0 : s), tokens[s]);
                if (s < tokens.length - 1) {
                    dropped.add(s, updates.get(s), tokens[s]);
                }
            }
            assertEquals(false, swapped.finish(9).state().bitwiseEquals(expected));
            assertEquals(false, dropped.finish(9).state().bitwiseEquals(expected));
        } finally {
            files.forEach(AdapterStateFile.Reader::close);
        }
    }

    private static Map<String, long[]> layout(AdapterTensors state) {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (String k : state.keys()) {
            shapes.put(k, state.tensor(k).shape());
        }
        return shapes;
    }

    private static AdapterTensors sequentialAverage(List<AdapterTensors> updates, long[] tokens) {
        double total = 0;
        for (long t : tokens) {
            total += t;
        }
        Map<String, AdapterTensors.Tensor> out = new LinkedHashMap<>();
        for (String k : updates.get(0).keys()) {
            int n = updates.get(0).tensor(k).size();
            double[][] sums = new double[3][n];
            for (int s = 0; s < updates.size(); s++) {
                AdapterTensors.Tensor t = updates.get(s).tensor(k);
                float[][] parts = {t.weights(), t.adamM(), t.adamV()};
                for (int p = 0; p < 3; p++) {
                    for (int i = 0; i < n; i++) {
                        sums[p][i] += (double) tokens[s] * parts[p][i];
                    }
                }
            }
            float[][] avg = new float[3][n];
            for (int p = 0; p < 3; p++) {
                for (int i = 0; i < n; i++) {
                    avg[p][i] = (float) (sums[p][i] / total);
                }
            }
            out.put(k, new AdapterTensors.Tensor(updates.get(0).tensor(k).shape(), avg[0], avg[1], avg[2]));
        }
        return new AdapterTensors(out, 9);
    }
}
