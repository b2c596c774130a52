package org.qalora.worker.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import java.util.function.ToDoubleFunction;

/**
 * Finite-difference checks in float32: central differences along a random unit direction (one directional
 * derivative covers every coordinate at once, and is far less noisy than per-coordinate differences in float).
 */
public final class GradCheck {
    private GradCheck() {}

    /**
     * Asserts {@code grad . u ~= (f(x + h u) - f(x - h u)) / 2h} for three random unit directions u.
     */
    public static void directional(String what, float[] x, float[] grad, ToDoubleFunction<float[]> f, double h,
                                   double relTol, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        for (int trial = 0; trial < 3; trial++) {
            double[] u = new double[x.length];
            double norm = 0;
            for (int i = 0; i < u.length; i++) {
                u[i] = rng.nextDouble() * 2 - 1;
                norm += u[i] * u[i];
            }
            norm = Math.sqrt(norm);
            double analytic = 0;
            for (int i = 0; i < u.length; i++) {
                u[i] /= norm;
                analytic += grad[i] * u[i];
            }
            float[] plus = x.clone(), minus = x.clone();
            for (int i = 0; i < u.length; i++) {
                plus[i] = (float) (x[i] + h * u[i]);
                minus[i] = (float) (x[i] - h * u[i]);
            }
            double numeric = (f.applyAsDouble(plus) - f.applyAsDouble(minus)) / (2 * h);
            double gradNorm = 0;
            for (float g : grad) {
                gradNorm += (double) g * g;
            }
            // Scale the tolerance by |grad| so directions nearly orthogonal to the gradient do not fail spuriously.
            double scale = Math.max(Math.abs(numeric), Math.sqrt(gradNorm) * 0.1);
            assertEquals(numeric, analytic, relTol * scale + 1e-7,
                    what + ": directional derivative " + analytic + " vs finite difference " + numeric);
        }
    }

    /** {@code sum r_i y_i} in double. */
    public static double dot(float[] r, float[] y) {
        double s = 0;
        for (int i = 0; i < r.length; i++) {
            s += (double) r[i] * y[i];
        }
        return s;
    }
}
