package org.qalora.worker.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.qalora.quant.util.SplitMix64;

/**
 * The permuted rows under llama.cpp's RoPE (adjacent pairs) give exactly HF's rotated vectors (halves), permuted:
 * so every attention score q.k is the same. Without the permutation they are not.
 */
class RopeRowOrderTest {
    private static final int HEADS = 3, HEAD_DIM = 8;
    private static final double BASE = 10000;

    /** HF's rotate_half RoPE: dimension i pairs with i + headDim/2. */
    private static double[] hfRope(double[] x, int pos) {
        double[] y = new double[x.length];
        int half = HEAD_DIM / 2;
        for (int h = 0; h < HEADS; h++) {
            for (int i = 0; i < half; i++) {
                double t = pos * Math.pow(BASE, -2.0 * i / HEAD_DIM), c = Math.cos(t), s = Math.sin(t);
                double a = x[h * HEAD_DIM + i], b = x[h * HEAD_DIM + i + half];
                y[h * HEAD_DIM + i] = a * c - b * s;
                y[h * HEAD_DIM + i + half] = b * c + a * s;
            }
        }
        return y;
    }

    /** ggml's normal RoPE (LLaMA in llama.cpp): dimension 2i pairs with 2i + 1. */
    private static double[] ggmlRope(double[] x, int pos) {
        double[] y = new double[x.length];
        for (int h = 0; h < HEADS; h++) {
            for (int i = 0; i < HEAD_DIM / 2; i++) {
                double t = pos * Math.pow(BASE, -2.0 * i / HEAD_DIM), c = Math.cos(t), s = Math.sin(t);
                double a = x[h * HEAD_DIM + 2 * i], b = x[h * HEAD_DIM + 2 * i + 1];
                y[h * HEAD_DIM + 2 * i] = a * c - b * s;
                y[h * HEAD_DIM + 2 * i + 1] = a * s + b * c;
            }
        }
        return y;
    }

    private static double[] permute(double[] x, int[] order) {
        double[] y = new double[x.length];
        for (int r = 0; r < x.length; r++) {
            y[r] = x[order[r]];
        }
        return y;
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    @Test
    void ggmlRopeOnPermutedRowsIsHfRopePermuted() {
        int[] order = RopeRowOrder.of(HEADS, HEAD_DIM);
        assertArrayEquals(new int[] {0, 4, 1, 5, 2, 6, 3, 7}, java.util.Arrays.copyOf(order, 8));
        SplitMix64 rng = new SplitMix64(3);
        double worstWrong = 0;
        for (int trial = 0; trial < 20; trial++) {
            double[] q = new double[HEADS * HEAD_DIM], k = new double[HEADS * HEAD_DIM];
            for (int i = 0; i < q.length; i++) {
                q[i] = rng.nextDouble() - 0.5;
                k[i] = rng.nextDouble() - 0.5;
            }
            int pq = 1 + rng.nextInt(50), pk = rng.nextInt(50);
            double[] ours = permute(hfRope(q, pq), order);
            double[] theirs = ggmlRope(permute(q, order), pq);
            for (int i = 0; i < q.length; i++) {
                assertEquals(ours[i], theirs[i], 1e-15);
            }
            double hfScore = dot(hfRope(q, pq), hfRope(k, pk));
            assertEquals(hfScore, dot(ggmlRope(permute(q, order), pq), ggmlRope(permute(k, order), pk)), 1e-12);
            worstWrong = Math.max(worstWrong, Math.abs(hfScore - dot(ggmlRope(q, pq), ggmlRope(k, pk))));
        }
        assertTrue(worstWrong > 1e-3, "unpermuted rows would give other scores; the check must see that");
    }
}
