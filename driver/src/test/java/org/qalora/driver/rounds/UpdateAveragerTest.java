package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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
