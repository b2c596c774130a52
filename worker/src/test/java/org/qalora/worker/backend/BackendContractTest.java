package org.qalora.worker.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.qalora.worker.model.RopeParams;
import org.qalora.worker.model.RopeTables;
import org.qalora.worker.model.TinyModels;

/**
 * The contract every backend meets, run against each one (CpuBackendTest, CudaBackendContractTest): each op against
 * its formula or a double reference, every backward against finite differences of its forward, adjoint checks for
 * linear maps. Tensors here are float32 (allocate/upload), so a GPU backend runs them in exact fp32.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class BackendContractTest {
    Backend BE;
    private final SplittableRandom rng = new SplittableRandom(7);

    /** The backend under test (closed after the class). */
    protected abstract Backend open();

    @BeforeAll
    void openBackend() { BE = open(); }

    @AfterAll
    void close() {
        if (BE != null) {
            BE.close();
        }
    }

    private float[] randn(int n) { return TinyModels.gaussian(rng, n, 1.0); }

    @Test
    void rmsNormBackwardMatchesFiniteDifferences() {
        int n = 3, h = 16;
        float[] x = randn(n * h), w = randn(h), r = randn(n * h);
        Tensor xt = BE.upload(x, n, h), wt = BE.upload(w, h), out = BE.allocate(n, h), rstd = BE.allocate(n);
        BE.rmsNorm(xt, wt, 1e-5f, out, rstd);
        Tensor dx = BE.allocate(n, h);
        BE.rmsNormBackward(BE.upload(r, n, h), xt, wt, rstd, dx);
        GradCheck.directional("rmsNorm dx", x, BE.download(dx), xs -> {
            Tensor o = BE.allocate(n, h);
            BE.rmsNorm(BE.upload(xs, n, h), wt, 1e-5f, o, BE.allocate(n));
            return GradCheck.dot(r, BE.download(o));
        }, 1e-2, 1e-3, 1);
    }

    @Test
    void rmsNormMatchesFormula() {
        float[] x = {1, 2, 3, 4};
        Tensor out = BE.allocate(1, 4), rstd = BE.allocate(1);
        BE.rmsNorm(BE.upload(x, 1, 4), BE.upload(new float[] {1, 1, 2, 2}, 4), 0f, out, rstd);
        double inv = 1 / Math.sqrt((1 + 4 + 9 + 16) / 4.0);
        assertArrayEquals(new float[] {(float) inv, (float) (2 * inv), (float) (6 * inv), (float) (8 * inv)},
                BE.download(out), 1e-6f);
    }

    /** Rows wider than a GPU thread keeps in registers (16 x 256 values) take a second loop there: 5000 and 9000. */
    @Test
    void rmsNormOfWideRowsMatchesFormula() {
        for (int h : new int[] {5000, 9000}) {
            float[] x = randn(2 * h), w = randn(h);
            Tensor out = BE.allocate(2, h), rstd = BE.allocate(2);
            BE.rmsNorm(BE.upload(x, 2, h), BE.upload(w, h), 1e-5f, out, rstd);
            float[] got = BE.download(out);
            for (int r = 0; r < 2; r++) {
                double ss = 0;
                for (int i = 0; i < h; i++) {
                    ss += (double) x[r * h + i] * x[r * h + i];
                }
                double inv = 1 / Math.sqrt(ss / h + 1e-5);
                for (int i = 0; i < h; i++) {
                    double want = w[i] * x[r * h + i] * inv;
                    assertEquals(want, got[r * h + i], 1e-5 * (1 + Math.abs(want)), "h " + h + " row " + r + " i " + i);
                }
            }
        }
    }

    @Test
    void ropeBackwardIsTheTransposeAndRotationPreservesNorms() {
        int seq = 5, heads = 2, d = 8;
        RopeTables tab = new RopeTables(BE, RopeParams.llama3(500000, 8, 1, 4, 16), d, 16);
        float[] x = randn(2 * seq * heads * d), y = randn(x.length);
        Tensor xt = BE.upload(x, 2 * seq, heads * d), yt = BE.upload(y, 2 * seq, heads * d);
        BE.rope(xt, tab.cos, tab.sin, seq, heads, d);
        BE.ropeBackward(yt, tab.cos, tab.sin, seq, heads, d);
        assertEquals(GradCheck.dot(BE.download(xt), y), GradCheck.dot(x, BE.download(yt)), 1e-4);
        assertEquals(GradCheck.dot(x, x), GradCheck.dot(BE.download(xt), BE.download(xt)), 1e-3);
        // position 0 is the identity
        assertArrayEquals(java.util.Arrays.copyOf(x, heads * d), java.util.Arrays.copyOf(BE.download(xt), heads * d), 1e-6f);
    }

    @Test
    void ropePairsDimensionIWithIPlusHalfAsHfRotateHalf() {
        int d = 4;
        RopeTables tab = new RopeTables(BE, RopeParams.plain(10000), d, 4);
        Tensor x = BE.upload(new float[] {0, 0, 0, 0, 1, 0, 0, 0}, 2, d); // position 1, x[0] = 1
        BE.rope(x, tab.cos, tab.sin, 2, 1, d);
        float[] out = BE.download(x);
        // HF: x' = x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1]; inv_freq[0] = 1, so angle = 1.
        assertEquals(Math.cos(1), out[4], 1e-6);
        assertEquals(0, out[5], 1e-6);
        assertEquals(Math.sin(1), out[6], 1e-6);
    }

    @Test
    void attentionBackwardMatchesFiniteDifferences() {
        AttentionShape s = new AttentionShape(2, 5, 4, 2, 8);
        int n = s.tokens();
        float[] q = randn(n * s.queryWidth()), k = randn(n * s.kvWidth()), v = randn(n * s.kvWidth());
        float[] r = randn(n * s.queryWidth());
        Tensor qt = BE.upload(q, n, s.queryWidth()), kt = BE.upload(k, n, s.kvWidth()), vt = BE.upload(v, n, s.kvWidth());
        Tensor probs = BE.attentionState(s), out = BE.allocate(n, s.queryWidth());
        BE.attention(qt, kt, vt, s, probs, out);
        Tensor dq = BE.allocate(n, s.queryWidth()), dk = BE.allocate(n, s.kvWidth()), dv = BE.allocate(n, s.kvWidth());
        BE.attentionBackward(BE.upload(r, n, s.queryWidth()), qt, kt, vt, probs, s, dq, dk, dv);
        GradCheck.directional("attention dq", q, BE.download(dq), qs -> attn(s, qs, k, v, r), 1e-2, 1e-3, 2);
        GradCheck.directional("attention dk", k, BE.download(dk), ks -> attn(s, q, ks, v, r), 1e-2, 1e-3, 3);
        GradCheck.directional("attention dv", v, BE.download(dv), vs -> attn(s, q, k, vs, r), 1e-2, 1e-3, 4);
    }

    @Test
    void attentionIsCausal() {
        AttentionShape s = new AttentionShape(1, 4, 2, 1, 4);
        float[] q = randn(4 * 8), k = randn(4 * 4), v = randn(4 * 4);
        float[] base = attnOut(s, q, k, v);
        k[3 * 4] += 5; // change the last key and value: earlier positions must not move
        v[3 * 4 + 1] += 5;
        float[] changed = attnOut(s, q, k, v);
        assertArrayEquals(java.util.Arrays.copyOf(base, 3 * 8), java.util.Arrays.copyOf(changed, 3 * 8), 0f);
        // the first position attends only to itself: output = v[0] of its kv head
        assertArrayEquals(java.util.Arrays.copyOf(v, 4), java.util.Arrays.copyOf(base, 4), 1e-6f);
    }

    /**
     * Cached attention of rows at scattered positions of two sequences, with the cache holding garbage after each
     * sequence's last written position (a row must not see it), against the rows of the causal attention over the
     * whole sequences.
     */
    @Test
    void cachedAttentionEqualsTheRowsOfCausalAttention() {
        int T = 6, heads = 4, kvHeads = 2, d = 8, capacity = 9;
        AttentionShape full = new AttentionShape(2, T, heads, kvHeads, d);
        KvCacheShape cs = new KvCacheShape(2, capacity, heads, kvHeads, d);
        float[] q = randn(2 * T * full.queryWidth()), k = randn(2 * T * full.kvWidth()), v = randn(2 * T * full.kvWidth());
        float[] expected = attnOut(full, q, k, v);                                        // [2*T, H*d]
        float[] kc = randn(cs.rows() * cs.kvWidth()), vc = randn(cs.rows() * cs.kvWidth()); // garbage everywhere
        int kw = cs.kvWidth(), qw = cs.queryWidth();
        for (int b = 0; b < 2; b++) {
            System.arraycopy(k, b * T * kw, kc, cs.row(b, 0) * kw, T * kw);
            System.arraycopy(v, b * T * kw, vc, cs.row(b, 0) * kw, T * kw);
        }
        int[] seqs = {1, 0, 1, 0}, pos = {0, T - 1, 3, 2};
        float[] rows = new float[seqs.length * qw];
        for (int n = 0; n < seqs.length; n++) {
            System.arraycopy(q, (seqs[n] * T + pos[n]) * qw, rows, n * qw, qw);
        }
        Tensor out = BE.allocate(seqs.length, qw);
        BE.cachedAttention(BE.upload(rows, seqs.length, qw), BE.upload(kc, cs.rows(), kw), BE.upload(vc, cs.rows(), kw),
                cs, seqs, pos, out);
        float[] got = BE.download(out);
        for (int n = 0; n < seqs.length; n++) {
            float[] want = java.util.Arrays.copyOfRange(expected, (seqs[n] * T + pos[n]) * qw, (seqs[n] * T + pos[n] + 1) * qw);
            assertArrayEquals(want, java.util.Arrays.copyOfRange(got, n * qw, (n + 1) * qw), 2e-6f,
                    "row " + n + " (sequence " + seqs[n] + ", position " + pos[n] + ")");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BE.cachedAttention(
                BE.upload(rows, seqs.length, qw), BE.allocate(cs.rows(), kw), BE.allocate(cs.rows(), kw), cs, seqs,
                new int[] {0, 9, 0, 0}, BE.allocate(seqs.length, qw)));
        assertTrue(e.getMessage().contains("position 9 is outside the cache's capacity [0, 9)"), e.getMessage());
    }

    private float[] attnOut(AttentionShape s, float[] q, float[] k, float[] v) {
        int n = s.tokens();
        Tensor out = BE.allocate(n, s.queryWidth());
        BE.attention(BE.upload(q, n, s.queryWidth()), BE.upload(k, n, s.kvWidth()), BE.upload(v, n, s.kvWidth()), s,
                BE.attentionState(s), out);
        return BE.download(out);
    }

    private double attn(AttentionShape s, float[] q, float[] k, float[] v, float[] r) {
        return GradCheck.dot(r, attnOut(s, q, k, v));
    }

    @Test
    void swigluBackwardMatchesFiniteDifferences() {
        int n = 3, f = 10;
        float[] g = randn(n * f), u = randn(n * f), r = randn(n * f);
        Tensor dg = BE.allocate(n, f), du = BE.allocate(n, f);
        BE.swigluBackward(BE.upload(r, n, f), BE.upload(g, n, f), BE.upload(u, n, f), dg, du);
        GradCheck.directional("swiglu dGate", g, BE.download(dg), gs -> swiglu(gs, u, r, n, f), 1e-2, 1e-3, 5);
        GradCheck.directional("swiglu dUp", u, BE.download(du), us -> swiglu(g, us, r, n, f), 1e-2, 1e-3, 6);
    }

    @Test
    void vectorisedSwigluMatchesDoubleFormulaIncludingTails() {
        int n = 3, f = 101; // several vector iterations and a scalar tail per row
        float[] g = randn(n * f), u = randn(n * f), dy = randn(n * f);
        Tensor out = BE.allocate(n, f), dg = BE.allocate(n, f), du = BE.allocate(n, f);
        BE.swiglu(BE.upload(g, n, f), BE.upload(u, n, f), out);
        BE.swigluBackward(BE.upload(dy, n, f), BE.upload(g, n, f), BE.upload(u, n, f), dg, du);
        float[] o = BE.download(out), dgs = BE.download(dg), dus = BE.download(du);
        for (int i = 0; i < n * f; i++) {
            double sig = 1 / (1 + Math.exp(-g[i])), silu = g[i] * sig;
            assertEquals(silu * u[i], o[i], 1e-6 * (1 + Math.abs(silu * u[i])));
            assertEquals(dy[i] * silu, dus[i], 1e-6 * (1 + Math.abs(dy[i] * silu)));
            double dgate = dy[i] * u[i] * sig * (1 + g[i] * (1 - sig));
            assertEquals(dgate, dgs[i], 1e-6 * (1 + Math.abs(dgate)));
        }
    }

    private double swiglu(float[] g, float[] u, float[] r, int n, int f) {
        Tensor out = BE.allocate(n, f);
        BE.swiglu(BE.upload(g, n, f), BE.upload(u, n, f), out);
        return GradCheck.dot(r, BE.download(out));
    }

    @Test
    void groupPoolBackwardIsTheAdjoint() {
        int n = 3, in = 12, g = 4;
        float[] x = randn(n * in), y = randn(n * in / g);
        Tensor pooled = BE.allocate(n, in / g), dx = BE.allocate(n, in);
        BE.groupPool(BE.upload(x, n, in), g, 0.25f, pooled);
        BE.groupPoolBackward(BE.upload(y, n, in / g), g, 0.25f, dx);
        assertEquals(GradCheck.dot(BE.download(pooled), y), GradCheck.dot(x, BE.download(dx)), 1e-5);
        assertEquals((x[0] + x[1] + x[2] + x[3]) * 0.25f, BE.download(pooled)[0], 1e-6);
    }

    @Test
    void crossEntropyMatchesFiniteDifferencesAndIgnoresMinus100() {
        int n = 4, v = 7;
        float[] logits = randn(n * v);
        int[] targets = {3, -100, 0, 6};
        Tensor dl = BE.allocate(n, v);
        double loss = BE.crossEntropy(BE.upload(logits, n, v), targets, 1f, dl);
        double expect = 0;
        for (int row : new int[] {0, 2, 3}) {
            double sum = 0;
            for (int i = 0; i < v; i++) {
                sum += Math.exp(logits[row * v + i]);
            }
            expect += Math.log(sum) - logits[row * v + targets[row]];
        }
        assertEquals(expect, loss, 1e-5);
        float[] g = BE.download(dl);
        for (int i = v; i < 2 * v; i++) {
            assertEquals(0f, g[i]);
        }
        GradCheck.directional("crossEntropy", logits, g,
                ls -> BE.crossEntropy(BE.upload(ls, n, v), targets, 1f, null), 1e-2, 1e-3, 7);
        assertThrows(IllegalArgumentException.class,
                () -> BE.crossEntropy(BE.upload(logits, n, v), new int[] {7, 0, 0, 0}, 1f, null));
        // a vocabulary wide enough for the vector path (several vectors plus a tail)
        int wide = 1000;
        float[] big = TinyModels.gaussian(rng, wide, 3);
        double sum = 0;
        for (float x : big) {
            sum += Math.exp(x);
        }
        assertEquals(Math.log(sum) - big[123], BE.crossEntropy(BE.upload(big, 1, wide), new int[] {123}, 1f, null), 1e-5);
    }

    @Test
    void matmulsMatchDoubleReference() {
        int m = 5, k = 7, n = 3;
        float[] a = randn(m * k), b = randn(n * k), bkn = randn(k * n), akm = randn(k * m);
        Tensor c = BE.allocate(m, n);
        BE.matmulNT(BE.upload(a, m, k), BE.upload(b, n, k), c, false);
        float[] nt = BE.download(c);
        BE.matmulNN(BE.upload(a, m, k), BE.upload(bkn, k, n), c, true);
        float[] acc = BE.download(c);
        Tensor c2 = BE.allocate(m, n);
        BE.matmulTN(BE.upload(akm, k, m), BE.upload(bkn, k, n), c2, false);
        float[] tn = BE.download(c2);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s1 = 0, s2 = 0, s3 = 0;
                for (int p = 0; p < k; p++) {
                    s1 += (double) a[i * k + p] * b[j * k + p];
                    s2 += (double) a[i * k + p] * bkn[p * n + j];
                    s3 += (double) akm[p * m + i] * bkn[p * n + j];
                }
                assertEquals(s1, nt[i * n + j], 1e-5);
                assertEquals(s1 + s2, acc[i * n + j], 1e-5);
                assertEquals(s3, tn[i * n + j], 1e-5);
            }
        }
    }

    @Test
    void dropoutIsDeterministicInverted() {
        float[] x = new float[10000];
        java.util.Arrays.fill(x, 1f);
        Tensor a = BE.upload(x, 100, 100), b = BE.upload(x, 100, 100), ma = BE.allocate(100, 100), mb = BE.allocate(100, 100);
        BE.dropout(a, ma, 0.25f, 42);
        BE.dropout(b, mb, 0.25f, 42);
        assertArrayEquals(BE.download(a), BE.download(b), 0f);
        double mean = GradCheck.dot(BE.download(a), x) / x.length;
        assertEquals(1.0, mean, 0.05);
        assertTrue(BE.download(ma)[0] == 0f || BE.download(ma)[0] == 1f / 0.75f);
    }

    @Test
    void adamwFollowsPyTorch() {
        // torch.optim.AdamW on one scalar, lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.01; grads 1, -2, 0.5
        Tensor p = BE.upload(new float[] {1f}, 1), g = BE.allocate(1), m = BE.allocate(1), v = BE.allocate(1);
        double pe = 1, me = 0, ve = 0;
        double[] grads = {1, -2, 0.5};
        for (int t = 1; t <= 3; t++) {
            BE.write(g, new float[] {(float) grads[t - 1]});
            BE.adamw(p, g, m, v, 1f, 0.1, 0.9, 0.999, 1e-8, 0.01, t);
            pe *= 1 - 0.1 * 0.01;
            me = 0.9 * me + 0.1 * grads[t - 1];
            ve = 0.999 * ve + 0.001 * grads[t - 1] * grads[t - 1];
            pe -= 0.1 / (1 - Math.pow(0.9, t)) * me / (Math.sqrt(ve) / Math.sqrt(1 - Math.pow(0.999, t)) + 1e-8);
            assertEquals(pe, BE.download(p)[0], 1e-6);
        }
    }

    /**
     * Decoupled weight decay, large enough to matter: lr 0.1 and weight decay 0.5 shrink every weight by 5% a step,
     * about 1e4 times the tolerance, so a backend that dropped or coupled the decay fails. Some gradients are zero
     * (decay is then the only move) and the length is not a multiple of any SIMD width.
     */
    @Test
    void adamwAppliesLargeWeightDecay() {
        int n = 37;
        double lr = 0.1, wd = 0.5, tol = 1e-6;
        float[] p0 = randn(n);
        Tensor p = BE.upload(p0.clone(), n), g = BE.allocate(n), m = BE.allocate(n), v = BE.allocate(n);
        double[][] withDecay = {toDoubles(p0), new double[n], new double[n]};
        double[][] noDecay = {toDoubles(p0), new double[n], new double[n]};
        for (int t = 1; t <= 3; t++) {
            float[] grad = randn(n);
            for (int i = 0; i < n; i += 4) {
                grad[i] = 0f;
            }
            BE.write(g, grad);
            BE.adamw(p, g, m, v, 1f, lr, 0.9, 0.999, 1e-8, wd, t);
            adamwReference(withDecay, grad, lr, wd, t);
            adamwReference(noDecay, grad, lr, 0, t);
            float[] got = BE.download(p);
            double err = 0, decayEffect = 0;
            for (int i = 0; i < n; i++) {
                err = Math.max(err, Math.abs(got[i] - withDecay[0][i]) / (1 + Math.abs(withDecay[0][i])));
                decayEffect = Math.max(decayEffect, Math.abs(withDecay[0][i] - noDecay[0][i]));
            }
            assertTrue(err <= tol, "step " + t + ": max error " + err + " (absolute below 1, relative above)");
            assertTrue(decayEffect > 1000 * tol, "step " + t + ": weight decay moved weights by only " + decayEffect);
        }
    }

    /** torch.optim.AdamW's update in double on {@code state = {params, m, v}}. */
    private static void adamwReference(double[][] state, float[] grad, double lr, double wd, int t) {
        double[] p = state[0], m = state[1], v = state[2];
        for (int i = 0; i < p.length; i++) {
            p[i] *= 1 - lr * wd;
            m[i] = 0.9 * m[i] + 0.1 * grad[i];
            v[i] = 0.999 * v[i] + 0.001 * grad[i] * grad[i];
            p[i] -= lr / (1 - Math.pow(0.9, t)) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - Math.pow(0.999, t)) + 1e-8);
        }
    }

    private static double[] toDoubles(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    @Test
    void embeddingRejectsIdsOutsideTheVocabulary() {
        Tensor table = BE.upload(randn(12), 4, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BE.embedding(new int[] {1, 4}, table, BE.allocate(2, 3)));
        assertTrue(e.getMessage().contains("token id 4 at position 1"), e.getMessage());
    }

    /**
     * The integer-tensor forms read their ids and cache rows from backend memory and give exactly what the host-array
     * forms give; the cache write touches only the named rows.
     */
    @Test
    void intTensorFormsEqualTheHostArrayForms() {
        int heads = 4, kvHeads = 2, d = 8, capacity = 5, vocab = 7, h = 6;
        KvCacheShape cs = new KvCacheShape(3, capacity, heads, kvHeads, d);
        int kw = cs.kvWidth(), qw = cs.queryWidth();
        Tensor table = BE.upload(randn(vocab * h), vocab, h);
        int[] ids = {6, 0, 3};
        IntTensor both = BE.allocateInts(2 + ids.length);                              // 2 ints of padding first
        BE.writeInts(both, new int[] {9, 9, 6, 0, 3});
        Tensor viaHost = BE.allocate(ids.length, h), viaInts = BE.allocate(ids.length, h);
        BE.embedding(ids, table, viaHost);
        BE.embedding(both.slice(2, ids.length), table, viaInts);
        assertArrayEquals(BE.download(viaHost), BE.download(viaInts), "embedding");

        float[] cacheInit = randn(cs.rows() * kw), x = randn(2 * kw);
        Tensor cache = BE.upload(cacheInit, cs.rows(), kw);
        IntTensor rows = BE.allocateInts(4);
        BE.writeInts(rows, new int[] {2, 0, 4, 1});                                     // (2, 4) and (0, 1)
        BE.writeCacheRows(BE.upload(x, 2, kw), cache, cs, rows);
        float[] want = cacheInit.clone();
        System.arraycopy(x, 0, want, cs.row(2, 4) * kw, kw);
        System.arraycopy(x, kw, want, cs.row(0, 1) * kw, kw);
        assertArrayEquals(want, BE.download(cache), "cache after the write");

        float[] q = randn(2 * qw);
        Tensor k = BE.upload(randn(cs.rows() * kw), cs.rows(), kw), v = BE.upload(randn(cs.rows() * kw), cs.rows(), kw);
        Tensor outHost = BE.allocate(2, qw), outInts = BE.allocate(2, qw);
        BE.cachedAttention(BE.upload(q, 2, qw), k, v, cs, new int[] {2, 0}, new int[] {4, 1}, outHost);
        BE.cachedAttention(BE.upload(q, 2, qw), k, v, cs, rows, outInts);
        assertArrayEquals(BE.download(outHost), BE.download(outInts), "cached attention");
    }

    /**
     * A repeated step reads what changes between runs from tensors and integers in backend memory: four runs with
     * new ids each give exactly what the same operations give run directly. On a GPU the second run records the
     * step and the later ones replay the recording (a cuBLAS product included).
     */
    @Test
    void aRepeatedStepSeesNewIntsAtEveryRun() {
        int vocab = 9, h = 8, o = 5;
        Tensor table = BE.upload(randn(vocab * h), vocab, h), w = BE.upload(randn(o * h), o, h);
        Tensor bias = BE.upload(randn(2 * o), 2, o);
        IntTensor ids = BE.allocateInts(2);
        Tensor x = BE.allocate(2, h), y = BE.allocate(2, o), out = BE.allocate(2, o);
        try (RepeatedStep step = BE.repeatable(() -> {
            BE.embedding(ids, table, x);                                                   // x[2,H]
            BE.matmulNT(x, w, y, false);                                                   // y[2,O]
            BE.add(y, bias, out);
        })) {
            int[][] runs = {{1, 2}, {8, 0}, {3, 3}, {5, 7}};
            for (int[] r : runs) {
                BE.writeInts(ids, r);
                step.run();
                float[] got = BE.download(out);
                Tensor ex = BE.allocate(2, h), ey = BE.allocate(2, o), eo = BE.allocate(2, o);
                BE.embedding(r, table, ex);
                BE.matmulNT(ex, w, ey, false);
                BE.add(ey, bias, eo);
                assertArrayEquals(BE.download(eo), got, "run with ids " + java.util.Arrays.toString(r));
            }
            step.close();
            assertThrows(IllegalStateException.class, step::run, "a closed step does not run");
        }
    }
}
