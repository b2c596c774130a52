package org.qalora.worker.backend;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.DenseKernels;
import org.qalora.quant.kernels.KernelPool;
import org.qalora.quant.kernels.QuantKernels;
import org.qalora.quant.kernels.VectorDenseKernels;
import org.qalora.quant.kernels.VectorQuantKernels;

/**
 * The CPU backend: tensors are Java float arrays; matrix products go to the quant-kernels kernels; the layer
 * operations (norms, rope, attention, activations, loss, optimizer) are written here, threaded over a fixed
 * partition so results are bit-identical from run to run.
 */
public final class CpuBackend implements Backend {
    private final KernelPool pool;
    private final FixedPartition par;
    private final DenseKernels dense;
    private final QuantKernels quant;

    /**
     * Quantized products of fewer rows than this run as GEMVs, and round their input to int8 when
     * {@link #int8Activations} is on: {@code VectorQuantKernels} switches to its fused multiply at 4 rows.
     */
    private static final int GEMV_MAX_ROWS = 3;
    private final boolean int8Activations;

    /** A backend with its own pool of {@code threads} threads (the caller's thread counts as one). */
    public CpuBackend(int threads) {
        this(threads, false);
    }

    /**
     * @param int8Activations round the input of quantized products of one to three rows (decode steps of up to
     *                        three sequences, prompts of up to three tokens) to int8 per block of 32 and multiply
     *                        in integer lanes ({@code QuantKernels#gemvInt8Activations}), about 0.5% relative error
     *                        on each product; never for training, whose products must be exact. Not offered by
     *                        {@code qalora generate}: on the 2-vCPU dev box it was not clearly faster end to end
     *                        (docs/PERFORMANCE.md, GEMV section); {@code bin/bench-decode MODEL 2 64 32 8 both}
     *                        measures it against the exact decode.
     */
    public CpuBackend(int threads, boolean int8Activations) {
        this.pool = new KernelPool(threads);
        this.par = new FixedPartition(pool);
        this.dense = new VectorDenseKernels(pool);
        this.quant = new VectorQuantKernels(pool);
        this.int8Activations = int8Activations;
    }

    /** A backend using every available processor. */
    public static CpuBackend withAllCores() {
        return new CpuBackend(Runtime.getRuntime().availableProcessors());
    }

    public int threads() { return par.threads(); }

    @Override
    public String name() { return "cpu(" + par.threads() + " threads" + (int8Activations ? ", int8 activations" : "") + ")"; }

    // ---- storage ----

    private CpuTensor own(Tensor t) {
        if (t instanceof CpuTensor c && c.backend() == this) {
            return c;
        }
        throw new IllegalArgumentException(t + " does not belong to " + name());
    }

    private float[] d(Tensor t) { return own(t).data; }

    @Override
    public Tensor allocate(int... shape) {
        long n = 1;
        for (int s : shape) {
            n *= s;
        }
        if (n > Integer.MAX_VALUE - 8 || n <= 0) {
            throw new IllegalArgumentException("cannot allocate tensor " + Arrays.toString(shape));
        }
        return new CpuTensor(this, new float[(int) n], shape);
    }

    @Override
    public Tensor upload(float[] host, int... shape) {
        return new CpuTensor(this, host.clone(), shape);
    }

    @Override
    public Tensor adopt(float[] host, int... shape) {
        return new CpuTensor(this, host, shape);
    }

    @Override
    public float[] release(Tensor t) { return d(t); }

    @Override
    public void write(Tensor t, float[] host) {
        float[] dst = d(t);
        if (host.length != dst.length) {
            throw new IllegalArgumentException("writing " + host.length + " values into " + t);
        }
        System.arraycopy(host, 0, dst, 0, dst.length);
    }

    @Override
    public float[] download(Tensor t) { return d(t).clone(); }

    @Override
    public void zero(Tensor t) { Arrays.fill(d(t), 0f); }

    @Override
    public void copy(Tensor src, Tensor dst) {
        float[] s = d(src), t = d(dst);
        requireSize(src.size(), dst.size(), "copy");
        System.arraycopy(s, 0, t, 0, s.length);
    }

    @Override
    public void copyRows(Tensor src, int srcRow, Tensor dst, int dstRow, int rows) {
        int c = src.cols();
        requireSize(dst.cols(), c, "copyRows width");
        if (srcRow < 0 || dstRow < 0 || rows < 0 || srcRow + rows > src.rows() || dstRow + rows > dst.rows()) {
            throw new IllegalArgumentException("copyRows: rows [" + srcRow + ", +" + rows + ") of " + src + " into ["
                    + dstRow + ", +" + rows + ") of " + dst + " are out of range");
        }
        System.arraycopy(d(src), srcRow * c, d(dst), dstRow * c, rows * c);
    }

    // ---- weights ----

    @Override
    public LinearWeight denseWeight(Tensor w) {
        own(w);
        if (w.rank() != 2) {
            throw new IllegalArgumentException("a dense weight must be [out, in], got " + w);
        }
        return new CpuDenseWeight(w.dim(0), w.dim(1), own(w));
    }

    @Override
    public LinearWeight quantizedWeight(QuantizedMatrix matrix) {
        return new CpuQuantWeight(quant.prepare(matrix));
    }

    @Override
    public QuantizedMatrix quantizedMatrix(LinearWeight w) {
        if (w instanceof CpuQuantWeight qw) {
            return qw.prepared().source();
        }
        throw new IllegalArgumentException(w + " is not a quantized weight of " + name());
    }

    private record CpuDenseWeight(int outFeatures, int inFeatures, CpuTensor w) implements LinearWeight {
        @Override
        public boolean quantized() { return false; }
    }

    // ---- matrix products ----

    private static void requireSize(int got, int want, String what) {
        if (got != want) {
            throw new IllegalArgumentException(what + ": size mismatch, " + got + " vs " + want);
        }
    }

    @Override
    public void linear(Tensor x, LinearWeight w, Tensor y) {
        int n = x.rows();
        requireSize(x.cols(), w.inFeatures(), "linear input width");
        requireSize(y.size(), n * w.outFeatures(), "linear output");
        switch (w) {
            case CpuDenseWeight dw -> dense.matmulNT(d(x), 0, n, w.inFeatures(), dw.w().data, 0, w.outFeatures(), d(y), 0, false);
            case CpuQuantWeight qw when int8Activations && n <= GEMV_MAX_ROWS -> {
                for (int r = 0; r < n; r++) {
                    quant.gemvInt8Activations(qw.prepared(), d(x), r * w.inFeatures(), d(y), r * w.outFeatures());
                }
            }
            case CpuQuantWeight qw -> quant.matmul(qw.prepared(), d(x), 0, n, d(y), 0);
            default -> throw new IllegalArgumentException(w + " does not belong to " + name());
        }
    }

    @Override
    public void linearBackwardInput(Tensor dy, LinearWeight w, Tensor dx, boolean accumulate) {
        int n = dy.rows();
        requireSize(dy.cols(), w.outFeatures(), "linear backward gradient width");
        requireSize(dx.size(), n * w.inFeatures(), "linear backward input gradient");
        switch (w) {
            case CpuDenseWeight dw -> dense.matmulNN(d(dy), 0, n, w.outFeatures(), dw.w().data, 0, w.inFeatures(), d(dx), 0, accumulate);
            case CpuQuantWeight qw -> quant.matmulTransposed(qw.prepared(), d(dy), 0, n, d(dx), 0, accumulate);
            default -> throw new IllegalArgumentException(w + " does not belong to " + name());
        }
    }

    @Override
    public void matmulNT(Tensor a, Tensor b, Tensor c, boolean accumulate) {
        int m = a.rows(), k = a.cols(), n = b.rows();
        requireSize(b.cols(), k, "matmulNT inner");
        requireSize(c.size(), m * n, "matmulNT output");
        dense.matmulNT(d(a), 0, m, k, d(b), 0, n, d(c), 0, accumulate);
    }

    @Override
    public void matmulNN(Tensor a, Tensor b, Tensor c, boolean accumulate) {
        int m = a.rows(), k = a.cols(), n = b.cols();
        requireSize(b.rows(), k, "matmulNN inner");
        requireSize(c.size(), m * n, "matmulNN output");
        dense.matmulNN(d(a), 0, m, k, d(b), 0, n, d(c), 0, accumulate);
    }

    @Override
    public void matmulTN(Tensor a, Tensor b, Tensor c, boolean accumulate) {
        int k = a.rows(), m = a.cols(), n = b.cols();
        requireSize(b.rows(), k, "matmulTN inner");
        requireSize(c.size(), m * n, "matmulTN output");
        dense.matmulTN(d(a), 0, m, k, d(b), 0, n, d(c), 0, accumulate);
    }

    // ---- layers ----

    @Override
    public void embedding(int[] ids, Tensor table, Tensor out) {
        float[] tab = d(table), o = d(out);
        int h = table.cols(), vocab = table.rows();
        requireSize(out.size(), ids.length * h, "embedding output");
        BackendChecks.tokenIds(ids, vocab);
        for (int n = 0; n < ids.length; n++) {
            System.arraycopy(tab, ids[n] * h, o, n * h, h);
        }
    }

    @Override
    public void embedding(IntTensor ids, Tensor table, Tensor out) {
        embedding(ints(ids).values(), table, out);
    }

    @Override
    public IntTensor allocateInts(int n) {
        return new CpuInts(new int[n], 0, n);
    }

    @Override
    public void writeInts(IntTensor t, int[] values) {
        CpuInts c = ints(t);
        if (values.length != c.size()) {
            throw new IllegalArgumentException("writing " + values.length + " ints into " + c.size());
        }
        System.arraycopy(values, 0, c.data, c.offset, values.length);
    }

    private static CpuInts ints(IntTensor t) {
        if (t instanceof CpuInts c) {
            return c;
        }
        throw new IllegalArgumentException(t + " does not belong to the CPU backend");
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor rstd) {
        float[] xs = d(x), w = d(weight), o = d(out), r = d(rstd);
        int h = x.cols();
        requireSize(weight.size(), h, "rmsNorm weight");
        par.forEach(x.rows(), n -> {
            int off = n * h;
            double ss = 0;
            for (int i = 0; i < h; i++) {
                ss += (double) xs[off + i] * xs[off + i];
            }
            float rs = (float) (1.0 / Math.sqrt(ss / h + eps));
            r[n] = rs;
            for (int i = 0; i < h; i++) {
                o[off + i] = w[i] * (xs[off + i] * rs);
            }
        });
    }

    @Override
    public void rmsNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor rstd, Tensor dx) {
        float[] dy = d(dOut), xs = d(x), w = d(weight), r = d(rstd), g = d(dx);
        int h = x.cols();
        par.forEach(x.rows(), n -> {
            int off = n * h;
            double dot = 0; // sum_i w_i dy_i x_i
            for (int i = 0; i < h; i++) {
                dot += (double) w[i] * dy[off + i] * xs[off + i];
            }
            float rs = r[n];
            float coef = (float) (dot * rs * rs * rs / h);
            for (int i = 0; i < h; i++) {
                g[off + i] += rs * w[i] * dy[off + i] - coef * xs[off + i];
            }
        });
    }

    @Override
    public void rope(Tensor x, Tensor cos, Tensor sin, int seqLen, int heads, int headDim) {
        rotate(x, cos, sin, seqLen, heads, headDim, 1f);
    }

    @Override
    public void ropeBackward(Tensor dx, Tensor cos, Tensor sin, int seqLen, int heads, int headDim) {
        rotate(dx, cos, sin, seqLen, heads, headDim, -1f);
    }

    /** Rotates each (i, i + d/2) pair by +angle ({@code sign = 1}) or -angle (the transpose, for backward). */
    private void rotate(Tensor x, Tensor cos, Tensor sin, int seqLen, int heads, int headDim, float sign) {
        float[] xs = d(x), c = d(cos), s = d(sin);
        int half = headDim / 2, width = heads * headDim;
        requireSize(x.cols(), width, "rope width");
        if (cos.rows() < seqLen || cos.cols() != half) {
            throw new IllegalArgumentException("rope tables " + cos + " do not cover " + seqLen + " positions of dim " + headDim);
        }
        par.forEach(x.rows(), n -> {
            int pos = n % seqLen;
            for (int h = 0; h < heads; h++) {
                int off = n * width + h * headDim;
                for (int i = 0; i < half; i++) {
                    float cv = c[pos * half + i], sv = sign * s[pos * half + i];
                    float a = xs[off + i], b = xs[off + i + half];
                    xs[off + i] = a * cv - b * sv;
                    xs[off + i + half] = b * cv + a * sv;
                }
            }
        });
    }

    /** The softmax probabilities {@code [B, heads, T, T]}: backward reads them instead of recomputing. */
    @Override
    public Tensor attentionState(AttentionShape s) {
        return allocate(s.batch(), s.heads(), s.seqLen(), s.seqLen());
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, AttentionShape shape, Tensor probs, Tensor out) {
        requireSize(q.size(), shape.tokens() * shape.queryWidth(), "attention q");
        requireSize(k.size(), shape.tokens() * shape.kvWidth(), "attention k");
        requireSize(probs.size(), shape.batch() * shape.heads() * shape.seqLen() * shape.seqLen(), "attention probs");
        CpuAttention.forward(par, dense, d(q), d(k), d(v), shape, d(probs), d(out));
    }

    @Override
    public void cachedAttention(Tensor q, Tensor kCache, Tensor vCache, KvCacheShape shape, int[] sequences,
                                int[] positions, Tensor out) {
        BackendChecks.cacheRows(shape, sequences, positions);
        requireSize(q.size(), positions.length * shape.queryWidth(), "cachedAttention q");
        requireSize(out.size(), positions.length * shape.queryWidth(), "cachedAttention out");
        requireSize(kCache.size(), shape.rows() * shape.kvWidth(), "cachedAttention key cache");
        requireSize(vCache.size(), shape.rows() * shape.kvWidth(), "cachedAttention value cache");
        CpuAttention.cached(par, dense, d(q), d(kCache), d(vCache), shape, sequences, positions, d(out));
    }

    @Override
    public void cachedAttention(Tensor q, Tensor kCache, Tensor vCache, KvCacheShape shape, IntTensor rows,
                                Tensor out) {
        int[] r = ints(rows).values();
        int n = r.length / 2;
        cachedAttention(q, kCache, vCache, shape, java.util.Arrays.copyOf(r, n), java.util.Arrays.copyOfRange(r, n, 2 * n),
                out);
    }

    @Override
    public void writeCacheRows(Tensor x, Tensor cache, KvCacheShape shape, IntTensor rows) {
        int[] r = ints(rows).values();
        int n = r.length / 2;
        requireSize(x.rows(), n, "writeCacheRows rows");
        BackendChecks.cacheRows(shape, java.util.Arrays.copyOf(r, n), java.util.Arrays.copyOfRange(r, n, 2 * n));
        for (int i = 0; i < n; i++) {
            copyRows(x, i, cache, shape.row(r[i], r[n + i]), 1);
        }
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor probs, AttentionShape shape,
                                  Tensor dq, Tensor dk, Tensor dv) {
        java.util.Arrays.fill(d(dq), 0f);   // CpuAttention adds; the contract writes
        java.util.Arrays.fill(d(dk), 0f);
        java.util.Arrays.fill(d(dv), 0f);
        CpuAttention.backward(par, dense, d(dOut), d(q), d(k), d(v), d(probs), shape, d(dq), d(dk), d(dv));
    }

    // Exponentials (SwiGLU, softmax, loss) use scalar Math.exp on purpose: the Vector API's EXP runs as an SVML
    // intrinsic once C2 compiles the loop but as a per-lane Java fallback before that, and the two round
    // differently, so results would depend on JIT warm-up (seen as a recompute-vs-stored gradient mismatch).
    // Math.exp uses the same stub in the interpreter and in compiled code.

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor out) {
        float[] g = d(gate), u = d(up), o = d(out);
        par.forEach(gate.rows(), n -> {
            int f = gate.cols();
            for (int i = n * f; i < (n + 1) * f; i++) {
                float z = g[i];
                o[i] = z / (1f + (float) Math.exp(-z)) * u[i];
            }
        });
    }

    @Override
    public void swigluBackward(Tensor dOut, Tensor gate, Tensor up, Tensor dGate, Tensor dUp) {
        float[] dy = d(dOut), g = d(gate), u = d(up), dg = d(dGate), du = d(dUp);
        par.forEach(gate.rows(), n -> {
            int f = gate.cols();
            for (int i = n * f; i < (n + 1) * f; i++) {
                float z = g[i];
                float sig = 1f / (1f + (float) Math.exp(-z));
                float silu = z * sig;
                du[i] = dy[i] * silu;
                dg[i] = dy[i] * u[i] * sig * (1f + z * (1f - sig));
            }
        });
    }

    @Override
    public void groupPool(Tensor x, int groupSize, float factor, Tensor out) {
        float[] xs = d(x), o = d(out);
        int in = x.cols(), groups = in / groupSize;
        requireSize(out.size(), x.rows() * groups, "groupPool output");
        par.forEach(x.rows(), n -> {
            for (int k = 0; k < groups; k++) {
                float sum = 0f;
                for (int j = 0; j < groupSize; j++) {
                    sum += xs[n * in + k * groupSize + j];
                }
                o[n * groups + k] = sum * factor;
            }
        });
    }

    @Override
    public void groupPoolBackward(Tensor dOut, int groupSize, float factor, Tensor dx) {
        float[] dy = d(dOut), g = d(dx);
        int in = dx.cols(), groups = in / groupSize;
        requireSize(dOut.size(), dx.rows() * groups, "groupPoolBackward gradient");
        par.forEach(dx.rows(), n -> {
            for (int k = 0; k < groups; k++) {
                float v = dy[n * groups + k] * factor;
                for (int j = 0; j < groupSize; j++) {
                    g[n * in + k * groupSize + j] += v;
                }
            }
        });
    }

    @Override
    public void dropout(Tensor x, Tensor mask, float p, long seed) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + p);
        }
        float[] m = d(mask);
        requireSize(mask.size(), x.size(), "dropout mask");
        // Drawn sequentially from one stream: the mask depends only on the seed, never on thread count.
        SplittableRandom rng = new SplittableRandom(seed);
        float keep = 1f / (1f - p);
        for (int i = 0; i < m.length; i++) {
            m[i] = rng.nextDouble() < p ? 0f : keep;
        }
        multiply(x, mask);
    }

    @Override
    public void multiply(Tensor x, Tensor mask) {
        float[] xs = d(x), m = d(mask);
        requireSize(mask.size(), x.size(), "multiply");
        for (int i = 0; i < xs.length; i++) {
            xs[i] *= m[i];
        }
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        float[] x = d(a), y = d(b), o = d(out);
        requireSize(b.size(), a.size(), "add");
        requireSize(out.size(), a.size(), "add output");
        for (int i = 0; i < o.length; i++) {
            o[i] = x[i] + y[i];
        }
    }

    @Override
    public void scale(Tensor x, float s) {
        float[] xs = d(x);
        for (int i = 0; i < xs.length; i++) {
            xs[i] *= s;
        }
    }

    @Override
    public double crossEntropy(Tensor logits, int[] targets, float gradScale, Tensor dLogits) {
        float[] l = d(logits);
        float[] g = dLogits == null ? null : d(dLogits);
        int vocab = logits.cols(), rows = logits.rows();
        requireSize(targets.length, rows, "crossEntropy targets");
        BackendChecks.targets(targets, vocab);
        double[] rowLoss = new double[rows]; // [N], summed in order below for a fixed reduction order
        par.forEach(rows, n -> {
            int off = n * vocab, target = targets[n];
            if (target == -100) {
                if (g != null) {
                    Arrays.fill(g, off, off + vocab, 0f);
                }
                return;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < vocab; i++) {
                max = Math.max(max, l[off + i]);
            }
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                double e = Math.exp(l[off + i] - max);
                if (g != null) {
                    g[off + i] = (float) e; // keep exp(l - max): one exp per logit
                }
                sum += e;
            }
            double lse = max + Math.log(sum);
            rowLoss[n] = lse - l[off + target];
            if (g != null) {
                float norm = (float) (gradScale / sum);
                for (int i = 0; i < vocab; i++) {
                    g[off + i] *= norm;
                }
                g[off + target] -= gradScale;
            }
        });
        double total = 0;
        for (double x : rowLoss) {
            total += x;
        }
        return total;
    }

    @Override
    public double sumOfSquares(Tensor x) {
        double s = 0;
        for (float v : d(x)) {
            s += (double) v * v;
        }
        return s;
    }

    @Override
    public boolean allFinite(Tensor x) {
        for (float v : d(x)) {
            if (!Float.isFinite(v)) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float gradScale, double lr, double beta1,
                      double beta2, double eps, double weightDecay, long step) {
        float[] p = d(param), g = d(grad), ms = d(m), vs = d(v);
        requireSize(grad.size(), param.size(), "adamw grad");
        double bc1 = 1 - Math.pow(beta1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        double stepSize = lr / bc1, decay = 1 - lr * weightDecay;
        for (int i = 0; i < p.length; i++) {
            double gi = (double) g[i] * gradScale;
            double mi = beta1 * ms[i] + (1 - beta1) * gi;
            double vi = beta2 * vs[i] + (1 - beta2) * gi * gi;
            ms[i] = (float) mi;
            vs[i] = (float) vi;
            double denom = Math.sqrt(vi) / bc2Sqrt + eps;
            p[i] = (float) (p[i] * decay - stepSize * mi / denom);
        }
    }

    @Override
    public void close() { pool.close(); }
}
