package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.qalora.driver.state.AdapterTensors;

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
}
