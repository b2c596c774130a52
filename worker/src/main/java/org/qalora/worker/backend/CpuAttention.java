package org.qalora.worker.backend;

/**
 * Causal GQA self-attention on float arrays, forward and backward, one (sequence, kv head) group per task.
 * Softmax statistics are accumulated in double: they are long sums whose float rounding would otherwise dominate
 * the error against the float64 reference.
 */
final class CpuAttention {
    private CpuAttention() {}

    /**
     * @param q     [B*T, H*d]
     * @param k     [B*T, Hkv*d]
     * @param v     [B*T, Hkv*d]
     * @param probs [B, H, T, T] softmax rows (zero above the diagonal)
     * @param out   [B*T, H*d]
     */
    static void forward(FixedPartition par, float[] q, float[] k, float[] v, AttentionShape s, float[] probs,
                        float[] out) {
        int T = s.seqLen(), H = s.heads(), d = s.headDim(), qw = s.queryWidth(), kw = s.kvWidth();
        int group = H / s.kvHeads();
        float scale = (float) (1.0 / Math.sqrt(d));
        par.forEach(s.batch() * H, task -> {
            int b = task / H, h = task % H, kvh = h / group;
            double[] scores = new double[T]; // [T] one query row
            for (int t = 0; t < T; t++) {
                int qOff = (b * T + t) * qw + h * d;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= t; j++) {
                    int kOff = (b * T + j) * kw + kvh * d;
                    float dot = 0f;
                    for (int c = 0; c < d; c++) {
                        dot += q[qOff + c] * k[kOff + c];
                    }
                    scores[j] = dot * scale;
                    max = Math.max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) {
                    scores[j] = Math.exp(scores[j] - max);
                    sum += scores[j];
                }
                int pOff = ((b * H + h) * T + t) * T;
                for (int c = 0; c < d; c++) {
                    out[qOff + c] = 0f;
                }
                for (int j = 0; j < T; j++) {
                    float p = j <= t ? (float) (scores[j] / sum) : 0f;
                    probs[pOff + j] = p;
                    if (p != 0f) {
                        int vOff = (b * T + j) * kw + kvh * d;
                        for (int c = 0; c < d; c++) {
                            out[qOff + c] += p * v[vOff + c];
                        }
                    }
                }
            }
        });
    }

    /** Adds the gradients into dq [B*T, H*d], dk, dv [B*T, Hkv*d]. */
    static void backward(FixedPartition par, float[] dOut, float[] q, float[] k, float[] v, float[] probs,
                         AttentionShape s, float[] dq, float[] dk, float[] dv) {
        int T = s.seqLen(), H = s.heads(), d = s.headDim(), qw = s.queryWidth(), kw = s.kvWidth();
        int group = H / s.kvHeads();
        float scale = (float) (1.0 / Math.sqrt(d));
        // One task per (sequence, kv head): the query heads sharing a kv head all add into the same dk/dv rows,
        // so they run sequentially inside one task to keep the summation order fixed.
        par.forEach(s.batch() * s.kvHeads(), task -> {
            int b = task / s.kvHeads(), kvh = task % s.kvHeads();
            float[] dScores = new float[T]; // [T]
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                for (int t = 0; t < T; t++) {
                    int qOff = (b * T + t) * qw + h * d;
                    int pOff = ((b * H + h) * T + t) * T;
                    double dot = 0; // sum_j p_j dP_j
                    for (int j = 0; j <= t; j++) {
                        int vOff = (b * T + j) * kw + kvh * d;
                        float dp = 0f;
                        for (int c = 0; c < d; c++) {
                            dp += dOut[qOff + c] * v[vOff + c];
                        }
                        dScores[j] = dp;
                        dot += (double) probs[pOff + j] * dp;
                    }
                    for (int j = 0; j <= t; j++) {
                        float p = probs[pOff + j];
                        float ds = (float) (p * (dScores[j] - dot)) * scale;
                        int kOff = (b * T + j) * kw + kvh * d;
                        for (int c = 0; c < d; c++) {
                            dq[qOff + c] += ds * k[kOff + c];
                            dk[kOff + c] += ds * q[qOff + c];
                            dv[kOff + c] += p * dOut[qOff + c];
                        }
                    }
                }
            }
        });
    }
}
