package org.qalora.quant.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.qalora.quant.util.SplitMix64;

/** Round-to-nearest-even halves from double, and the rounding bound: it holds, is tight, and fails when it should. */
class HalfTest {

    /** Every finite half, sorted by value (the oracle for nearest). */
    private static final double[] VALUES;
    private static final short[] BITS;

    static {
        java.util.List<Short> finite = new java.util.ArrayList<>();
        for (int b = 0; b < 0x10000; b++) {
            float f = Float.float16ToFloat((short) b);
            if (Float.isFinite(f) && !(f == 0 && b == 0x8000)) {
                finite.add((short) b);
            }
        }
        finite.sort((a, b) -> Double.compare(Float.float16ToFloat(a), Float.float16ToFloat(b)));
        VALUES = new double[finite.size()];
        BITS = new short[finite.size()];
        for (int i = 0; i < finite.size(); i++) {
            BITS[i] = finite.get(i);
            VALUES[i] = Float.float16ToFloat(BITS[i]);
        }
    }

    /** Brute force: the nearest half, ties to the even significand. */
    private static double nearest(double x) {
        int i = java.util.Arrays.binarySearch(VALUES, x);
        if (i >= 0) {
            return VALUES[i];
        }
        int hi = -i - 1, lo = hi - 1;
        double dl = x - VALUES[lo], dh = VALUES[hi] - x;
        if (dl != dh) {
            return dl < dh ? VALUES[lo] : VALUES[hi];
        }
        return (BITS[lo] & 1) == 0 ? VALUES[lo] : VALUES[hi];
    }

    @Test
    void roundsToTheNearestHalfTiesToEven() {
        SplitMix64 rng = new SplitMix64(11);
        for (int n = 0; n < 200_000; n++) {
            // magnitudes from deep subnormal (2^-27) to near the top of the range (2^15)
            double x = (rng.nextDouble() < 0.5 ? -1 : 1) * Math.pow(2, -27 + 42 * rng.nextDouble());
            assertEquals(nearest(x), Half.value(Half.round(x)), 0.0, () -> "x = " + x);   // -0 and 0 alike
        }
        for (int i = 0; i + 1 < VALUES.length; i++) {               // every exact tie between neighbours
            double tie = (VALUES[i] + VALUES[i + 1]) / 2;
            assertEquals(nearest(tie), Half.value(Half.round(tie)), 0.0, "tie " + tie);
        }
    }

    @Test
    void roundingThroughFloatFirstWouldBeWrongHere() {
        // x sits just above the tie 1 + 2^-11 between the halves 1 and 1 + 2^-10, so its nearest half is 1 + 2^-10;
        // (float) x rounds onto the tie itself, and the tie then goes to the even half 1.
        double x = 1 + 0x1p-11 + 0x1p-30;
        assertEquals(1.0, Float.float16ToFloat(Float.floatToFloat16((float) x)));
        assertEquals(1 + 0x1p-10, Half.value(Half.round(x)));
    }

    @Test
    void boundHoldsAndIsTight() {
        SplitMix64 rng = new SplitMix64(12);
        double worst = 0;
        for (int n = 0; n < 200_000; n++) {
            double x = (rng.nextDouble() - 0.5) * Math.pow(2, -20 + 30 * rng.nextDouble());
            double err = Math.abs(Half.value(Half.round(x)) - x);
            assertTrue(err <= Half.bound(x), () -> "x = " + x + ": error " + err + " above the bound " + Half.bound(x));
            worst = Math.max(worst, err / Half.bound(x));
        }
        assertTrue(worst > 0.9, "the bound is loose by more than 10%: worst ratio " + worst);
    }

    @Test
    void boundFailsForAHalfTwoStepsAway() {
        // A converter that picked a neighbour of the nearest half would be caught: two steps away always exceeds
        // the bound (the bound is below one step, and the nearest is at most half a step off).
        SplitMix64 rng = new SplitMix64(13);
        for (int n = 0; n < 10_000; n++) {
            double x = 0.01 + rng.nextDouble();
            short h = Half.round(x);
            double twoUp = Float.float16ToFloat((short) (h + 2));
            assertTrue(Math.abs(twoUp - x) > Half.bound(x), () -> "x = " + x);
        }
        double x = 0.3;
        assertNotEquals(Half.value(Half.round(x)), x, "0.3 is not a half: the rounding is real");
    }

    @Test
    void refusesValuesBeyondTheHalfRange() {
        assertEquals(65504.0, Half.value(Half.round(65504.0)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Half.round(70000.0));
        assertTrue(e.getMessage().contains("beyond the largest half"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Half.round(Double.NaN));
    }
}
