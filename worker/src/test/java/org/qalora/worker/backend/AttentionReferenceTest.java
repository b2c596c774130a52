package org.qalora.worker.backend;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.model.TinyModels;

/**
 * The sgemm-based attention (forward and backward) against a naive float64 implementation written directly from
 * the formulas, across sequence lengths (including ones that are not multiples of any vector width), head sizes
 * and GQA group sizes.
 */
class AttentionReferenceTest {
    private static final CpuBackend BE = new CpuBackend(2);

    @AfterAll
    static void close() { BE.close(); }

    @ParameterizedTest
    @CsvSource({"1, 1, 2, 2, 8", "2, 5, 4, 2, 8", "1, 17, 4, 1, 16", "3, 33, 6, 3, 32", "1, 64, 8, 2, 64",
                "2, 7, 2, 2, 4"})
    void matchesNaiveDoubleReference(int batch, int seq, int heads, int kvHeads, int d) {
        AttentionShape s = new AttentionShape(batch, seq, heads, kvHeads, d);
        SplittableRandom rng = new SplittableRandom(seq * 31L + heads);
        int n = s.tokens(), qw = s.queryWidth(), kw = s.kvWidth();
        float[] q = TinyModels.gaussian(rng, n * qw, 1), k = TinyModels.gaussian(rng, n * kw, 1);
        float[] v = TinyModels.gaussian(rng, n * kw, 1), dOut = TinyModels.gaussian(rng, n * qw, 1);
        Tensor qt = BE.upload(q, n, qw), kt = BE.upload(k, n, kw), vt = BE.upload(v, n, kw);
        Tensor probs = BE.allocate(batch, heads, seq, seq), out = BE.allocate(n, qw);
        BE.attention(qt, kt, vt, s, probs, out);
        Tensor dq = BE.allocate(n, qw), dk = BE.allocate(n, kw), dv = BE.allocate(n, kw);
        BE.attentionBackward(BE.upload(dOut, n, qw), qt, kt, vt, probs, s, dq, dk, dv);

        double[] rOut = new double[n * qw], rdq = new double[n * qw], rdk = new double[n * kw], rdv = new double[n * kw];
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(d);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / group;
                for (int t = 0; t < seq; t++) {
                    int qo = (b * seq + t) * qw + h * d;
                    double[] p = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j <= t; j++) {
                        int ko = (b * seq + j) * kw + kvh * d;
                        for (int c = 0; c < d; c++) {
                            p[j] += (double) q[qo + c] * k[ko + c] * scale;
                        }
                        max = Math.max(max, p[j]);
                    }
                    for (int j = 0; j <= t; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    double[] dp = new double[t + 1];
                    double dot = 0;
                    for (int j = 0; j <= t; j++) {
                        p[j] /= sum;
                        int vo = (b * seq + j) * kw + kvh * d;
                        for (int c = 0; c < d; c++) {
                            rOut[qo + c] += p[j] * v[vo + c];
                            dp[j] += (double) dOut[qo + c] * v[vo + c];
                            rdv[vo + c] += p[j] * dOut[qo + c];
                        }
                        dot += p[j] * dp[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        double ds = p[j] * (dp[j] - dot) * scale;
                        int ko = (b * seq + j) * kw + kvh * d;
                        for (int c = 0; c < d; c++) {
                            rdq[qo + c] += ds * k[ko + c];
                            rdk[ko + c] += ds * q[qo + c];
                        }
                    }
                }
            }
        }
        check("out", BE.download(out), rOut);
        check("dq", BE.download(dq), rdq);
        check("dk", BE.download(dk), rdk);
        check("dv", BE.download(dv), rdv);
    }

    private static void check(String what, float[] got, double[] want) {
        float[] w = new float[want.length];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) want[i];
        }
        double err = MergeCheck.relativeError(got, w);
        assertTrue(err < 2e-6, what + " relative error " + err);
    }
}
