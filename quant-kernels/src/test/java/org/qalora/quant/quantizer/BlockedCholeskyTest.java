package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.qalora.quant.kernels.BlockedCholesky;
import org.qalora.quant.kernels.KernelPool;

/**
 * The blocked Vector API solve against the plain reference {@link CholeskyMath}, bit for bit: sizes below, at and
 * across the panel (64) and the register tile, non-multiples of both, 4096 (a LLaMA-7B hidden width), dead inputs
 * (exact zeros, which the reference skips), one thread and several (this JVM's vector width; the kernels' forked
 * runs cover the others through the shared species).
 */
class BlockedCholeskyTest {

    /** A damped Hessian of {@code tokens} random activations, as GPTQ prepares it; {@code dead} inputs never fire. */
    static double[] dampedHessian(int n, int tokens, long seed, int... dead) {
        float[] x = GptqQuantizerTest.activations(tokens, n, seed); // [tokens, n]
        for (int d : dead) {
            for (int t = 0; t < tokens; t++) {
                x[t * n + d] = 0;
            }
        }
        Hessian h = new Hessian(n);
        h.add(x, tokens, 1);
        double[] m = h.matrix();
        double mean = 0;
        for (int i = 0; i < n; i++) {
            if (m[i * n + i] == 0) {
                m[i * n + i] = 1;
            }
            mean += m[i * n + i];
        }
        for (int i = 0; i < n; i++) {
            m[i * n + i] += 0.01 * mean / n;
        }
        return m;
    }

    private static void assertIdentical(int n, int tokens, KernelPool pool, int... dead) {
        double[] h = dampedHessian(n, tokens, n * 31L + tokens, dead);
        double[] copy = h.clone();
        double[] expected = CholeskyMath.upperCholeskyOfInverse(h, n, "w");
        double[] actual = BlockedCholesky.upperCholeskyOfInverse(h, n, "w", pool);
        assertTrue(Arrays.equals(h, copy), "the input must not be modified");
        for (int i = 0; i < n * n; i++) {
            if (Double.doubleToRawLongBits(expected[i]) != Double.doubleToRawLongBits(actual[i])) {
                throw new AssertionError("n " + n + ", " + pool.threads() + " threads: U[" + i / n + "][" + i % n
                        + "] is " + actual[i] + ", the reference has " + expected[i]);
            }
        }
    }

    @Test
    void identicalToTheReferenceAcrossSizesAndThreadCounts() {
        try (KernelPool one = new KernelPool(1); KernelPool three = new KernelPool(3)) {
            for (int n : new int[] {1, 2, 3, 5, 16, 17, 31, 63, 64, 65, 127, 128, 129, 200, 257, 333}) {
                int[] dead = n > 7 ? new int[] {0, n / 2, n - 1} : new int[0];
                assertIdentical(n, 2 * n + 3, one, dead);
                assertIdentical(n, n / 2 + 1, three, dead); // fewer tokens than inputs: ill-conditioned, still exact
            }
            assertIdentical(1000, 700, three, 3, 500);
        }
    }

    @Test
    void identicalToTheReferenceAtLlamaWidth() {
        try (KernelPool pool = new KernelPool(2)) {
            assertIdentical(4096, 512, pool, 1000);
        }
    }

    @Test
    void aMatrixThatIsNotPositiveDefiniteFailsAtTheSameColumn() {
        int n = 150;
        double[] h = dampedHessian(n, 400, 9);
        h[100 * n + 100] = -1; // past the first panel
        String expected = assertThrows(IllegalStateException.class,
                () -> CholeskyMath.upperCholeskyOfInverse(h, n, "layer.q")).getMessage();
        String actual;
        try (KernelPool pool = new KernelPool(2)) {
            actual = assertThrows(IllegalStateException.class,
                    () -> BlockedCholesky.upperCholeskyOfInverse(h, n, "layer.q", pool)).getMessage();
        }
        assertEquals(expected, actual);
        assertTrue(actual.contains("column 100"), actual);
    }
}
