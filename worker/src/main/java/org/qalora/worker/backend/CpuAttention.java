package org.qalora.worker.backend;

import org.qalora.quant.kernels.DenseKernels;

/**
 * Causal GQA self-attention on float arrays, forward and backward, one (sequence, head) per task, with the
 * per-head products done by the dense sgemm on strided views of the [B*T, heads*d] activations (no copies).
 * The full T x T score matrix is computed and the upper triangle masked: simpler and, with a vectorised sgemm,
 * faster than a scalar loop over the lower triangle. Softmax statistics are accumulated in double.
 */
final class CpuAttention {
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private CpuAttention() {}

    private static float[] scratch(int size) {
        float[] s = SCRATCH.get();
        if (s.length < size) {
            s = new float[size];
            SCRATCH.set(s);
        }
        return s;
    }

    /**
     * @param q     [B*T, H*d]
     * @param k     [B*T, Hkv*d]
     * @param v     [B*T, Hkv*d]
     * @param probs [B, H, T, T] softmax rows (zero above the diagonal)
     * @param out   [B*T, H*d]
     */
    static void forward(FixedPartition par, DenseKernels dense, float[] q, float[] k, float[] v, AttentionShape s,
                        float[] probs, float[] out) {
        int T = s.seqLen(), H = s.heads(), d = s.headDim(), qw = s.queryWidth(), kw = s.kvWidth();
        int group = H / s.kvHeads();
        double scale = 1.0 / Math.sqrt(d);
        par.forEach(s.batch() * H, task -> {
            int b = task / H, h = task % H, kvh = h / group;
            int qOff = b * T * qw + h * d, kOff = b * T * kw + kvh * d, pOff = (b * H + h) * T * T;
            dense.matmulNT(T, T, d, q, qOff, qw, k, kOff, kw, probs, pOff, T, false);   // S[T,T] = Q K^T
            for (int t = 0; t < T; t++) {
                int row = pOff + t * T;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= t; j++) {
                    max = Math.max(max, probs[row + j] * scale);
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) {
                    double e = Math.exp(probs[row + j] * scale - max);
                    probs[row + j] = (float) e;
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j <= t; j++) {
                    probs[row + j] *= inv;
                }
                for (int j = t + 1; j < T; j++) {
                    probs[row + j] = 0f;                                                 // causal mask
                }
            }
            dense.matmulNN(T, d, T, probs, pOff, T, v, kOff, kw, out, qOff, qw, false);  // O[T,d] = P V
        });
    }

    /**
     * Attention of new query rows against a KV cache (see Backend#cachedAttention). One task per (row, kv head): the
     * {@code rep} query heads sharing a kv head are adjacent in the row ({@code d} apart), so they form one
     * {@code [rep, d]} operand and the scores of all of them are one small sgemm against the cached keys.
     *
     * @param q   [N, H*d]
     * @param k   [S*capacity, Hkv*d] cache, row {@code s*capacity + p}
     * @param v   [S*capacity, Hkv*d]
     * @param out [N, H*d]
     */
    static void cached(FixedPartition par, DenseKernels dense, float[] q, float[] k, float[] v, KvCacheShape s,
                       int[] sequences, int[] positions, float[] out) {
        int H = s.heads(), KV = s.kvHeads(), d = s.headDim(), qw = s.queryWidth(), kw = s.kvWidth();
        int rep = H / KV;
        double scale = 1.0 / Math.sqrt(d);
        par.forEach(positions.length * KV, task -> {
            int n = task / KV, kvh = task % KV, keys = positions[n] + 1;
            int qOff = n * qw + kvh * rep * d, kOff = s.row(sequences[n], 0) * kw + kvh * d;
            float[] scores = scratch(rep * keys);                                             // [rep, L]
            dense.matmulNT(rep, keys, d, q, qOff, d, k, kOff, kw, scores, 0, keys, false);     // S = Q_g K^T
            for (int i = 0; i < rep; i++) {
                int row = i * keys;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < keys; j++) {
                    max = Math.max(max, scores[row + j] * scale);
                }
                double sum = 0;
                for (int j = 0; j < keys; j++) {
                    double e = Math.exp(scores[row + j] * scale - max);
                    scores[row + j] = (float) e;
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j < keys; j++) {
                    scores[row + j] *= inv;                                                    // P[rep, L]
                }
            }
            dense.matmulNN(rep, d, keys, scores, 0, keys, v, kOff, kw, out, qOff, d, false);    // O_g = P V
        });
    }

    /** Adds the gradients into dq [B*T, H*d], dk, dv [B*T, Hkv*d]. */
    static void backward(FixedPartition par, DenseKernels dense, float[] dOut, float[] q, float[] k, float[] v,
                         float[] probs, AttentionShape s, float[] dq, float[] dk, float[] dv) {
        int T = s.seqLen(), H = s.heads(), d = s.headDim(), qw = s.queryWidth(), kw = s.kvWidth();
        int group = H / s.kvHeads();
        float scale = (float) (1.0 / Math.sqrt(d));
        // One task per (sequence, kv head): the query heads sharing a kv head all add into the same dk/dv rows,
        // so they run one after the other inside the task to keep the summation order fixed.
        par.forEach(s.batch() * s.kvHeads(), task -> {
            int b = task / s.kvHeads(), kvh = task % s.kvHeads();
            int kOff = b * T * kw + kvh * d;
            float[] dS = scratch(T * T); // [T, T]
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                int qOff = b * T * qw + h * d, pOff = (b * H + h) * T * T;
                dense.matmulNT(T, T, d, dOut, qOff, qw, v, kOff, kw, dS, 0, T, false);   // dP = dO V^T
                for (int t = 0; t < T; t++) {
                    int row = pOff + t * T;
                    double dot = 0; // sum_j P_tj dP_tj
                    for (int j = 0; j <= t; j++) {
                        dot += (double) probs[row + j] * dS[t * T + j];
                    }
                    for (int j = 0; j <= t; j++) {
                        dS[t * T + j] = (float) (probs[row + j] * (dS[t * T + j] - dot)) * scale;
                    }
                    for (int j = t + 1; j < T; j++) {
                        dS[t * T + j] = 0f;
                    }
                }
                dense.matmulNN(T, d, T, dS, 0, T, k, kOff, kw, dq, qOff, qw, true);       // dQ += dS K
                dense.matmulTN(T, d, T, dS, 0, T, q, qOff, qw, dk, kOff, kw, true);       // dK += dS^T Q
                dense.matmulTN(T, d, T, probs, pOff, T, dOut, qOff, qw, dv, kOff, kw, true); // dV += P^T dO
            }
        });
    }
}
