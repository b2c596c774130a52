package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The accuracy contract of the fast kernels against the double-accumulating references.
 *
 * <p>A float dot product of length k (FMA or not, in any order or blocking) differs from the exact one by at
 * most about {@code k * u * sum|a_p * b_p|} with {@code u = 2^-24} (Higham's gamma_k bound). The bound checked
 * is {@code |fast - reference| <= 2 * k * u * magnitude + 1e-30} per element, where {@code magnitude} is the sum
 * of absolute terms (including an accumulated-into C). It is loose enough for any legal summation order and
 * tight enough that a wrong element, a dropped term or a misplaced tile (errors of the order of one term,
 * i.e. about {@code magnitude / k}) fails it.
 */
final class ErrorBound {
    private ErrorBound() {}

    static final double UNIT_ROUNDOFF = Math.scalb(1.0, -24);

    static void assertWithin(float[] expected, float[] actual, float[] magnitude, int k, String what) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + ", expected " + expected.length);
        }
        for (int e = 0; e < expected.length; e++) {
            double bound = 2.0 * Math.max(k, 1) * UNIT_ROUNDOFF * magnitude[e] + 1e-30;
            double error = Math.abs((double) actual[e] - expected[e]);
            if (!(error <= bound)) {
                fail(what + ": element " + e + " is " + actual[e] + ", reference " + expected[e] + " (error " + error
                        + " > bound " + bound + ")");
            }
        }
    }

    static float[] abs(float[] a) {
        float[] r = new float[a.length];
        for (int e = 0; e < a.length; e++) {
            r[e] = Math.abs(a[e]);
        }
        return r;
    }
}
