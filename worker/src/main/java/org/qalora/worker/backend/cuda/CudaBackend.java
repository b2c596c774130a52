package org.qalora.worker.backend.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.Cublas;
import org.qalora.quant.cuda.Cublas.DType;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.CudaGraphs;
import org.qalora.quant.cuda.DeviceBuffer;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.BackendChecks;
import org.qalora.worker.backend.IntTensor;
import org.qalora.worker.backend.KvCacheShape;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.RepeatedStep;
import org.qalora.worker.backend.Tensor;

/**
 * The GPU backend: tensors live in device memory for the whole step, the matrix products run on cuBLAS (bf16 tensor
 * cores under {@link Precision#BF16}, plain fp32 under {@link Precision#FP32}), the layer operations are the kernels
 * of {@code training_kernels.cu}, attention is {@link CudaAttention}. Host copies happen only where the interface
 * returns a number (loss, norms) or an array ({@link #download}).
 *
 * <p>Quantized weights stay in their GPTQ layout on the device and are dequantized per product into one scratch
 * matrix (bf16 or fp32), which cuBLAS then multiplies: docs/PERFORMANCE.md has the measurement against the fused
 * kernel. Everything runs on the default stream in issue order, so scratch buffers are reused without waits.
 *
 * <p>Deterministic: cuBLAS computes the same bits for the same shapes on the same GPU model and library version, and
 * every reduction here has a fixed order (the split-K decode GEMVs count finished blocks with atomics only to elect
 * the one that adds the partial sums in split order), so reruns are bit-identical.
 */
public final class CudaBackend implements Backend {
    private final CudaDriver cuda;
    private final Cublas blas;
    private final QuantKernelModule quant;
    private final TrainingKernels kernels;
    private final Precision precision;
    private final DType compute;
    private final CudaAttention attention;
    private final DeviceScratch ints, rowLoss;
    private final CudaProducts products;
    private final Operands operands;
    private final MultiTensorOps multi;
    private final AdapterFold fold;
    private final CudaDecodeOps decode;
    private final CudaFusedDecode fused;
    private boolean foldAdapters = true;
    private boolean graphs = !"false".equals(System.getProperty("qalora.cuda.graphs"));
    private boolean closed;

    /**
     * @throws IllegalStateException when the device cannot be used ({@link #unusableReason(int)} says why)
     */
    public CudaBackend(int ordinal, Precision precision) {
        String why = unusableReason(ordinal);
        if (why != null) {
            throw new IllegalStateException("GPU " + ordinal + " cannot be used: " + why);
        }
        this.cuda = CudaDriver.get(ordinal);
        this.blas = Cublas.get(ordinal);
        this.quant = QuantKernelModule.get(ordinal);
        this.kernels = new TrainingKernels(cuda);
        this.precision = precision;
        this.compute = precision == Precision.BF16 ? DType.BF16 : DType.F32;
        this.attention = new CudaAttention(cuda, kernels, blas, compute, new Operands(kernels));
        attention.blocks(DEFAULT_ATTENTION_BLOCKS);
        ints = new DeviceScratch(cuda);
        rowLoss = new DeviceScratch(cuda);
        operands = new Operands(kernels);
        products = new CudaProducts(cuda, blas, quant, compute, operands);
        multi = new MultiTensorOps(cuda, kernels);
        fold = new AdapterFold(cuda, blas, kernels);
        decode = new CudaDecodeOps(this, cuda, kernels, ints);
        fused = new CudaFusedDecode(quant, CudaFusedDecode.EPILOGUES);
    }

    /**
     * Null when GPU {@code ordinal} can train, else why not: no {@code libcuda.so.1}, no such device, compute
     * capability below 8.0, no PTX in the quant-kernels jar (built without nvcc), no cuBLAS. Never throws.
     */
    public static String unusableReason(int ordinal) {
        if (!CudaDriver.available(ordinal)) {
            return CudaDriver.unavailableReason(ordinal);
        }
        if (!QuantKernelModule.available(ordinal)) {
            return QuantKernelModule.unavailableReason(ordinal);
        }
        if (!Cublas.available(ordinal)) {
            return Cublas.unavailableReason(ordinal);
        }
        return null;
    }

    public Precision precision() { return precision; }

    /**
     * Causal blocks of attention's products (1 = full {@code T x T}; n skips the blocks above the diagonal, doing
     * {@code (n+1)/(2n)} of the work in n times as many GEMM calls). Default {@link #DEFAULT_ATTENTION_BLOCKS}.
     */
    public void attentionBlocks(int n) { attention.blocks(n); }

    /** Whether bf16 attention may use the fused flash-attention kernels (on by default; off to compare). */
    void fusedAttention(boolean on) { attention.allowFused(on); }

    /** Measured in bin/bench-gpu (docs/PERFORMANCE.md "GPU training"). */
    public static final int DEFAULT_ATTENTION_BLOCKS = 1;

    /**
     * Whether bf16 training folds adapters into the quantized weights' zero points ({@link AdapterFold}; default on).
     * Off runs the separate adapter products, as fp32 always does: the tests compare the two, the bench measures them.
     */
    public void foldAdapters(boolean on) { foldAdapters = on; }

    public CudaDriver driver() { return cuda; }

    @Override
    public String name() {
        return "cuda:" + cuda.ordinal() + "(" + cuda.deviceName() + ", " + precision.label() + ")";
    }

    // ---- storage ----

    private CudaTensor own(Tensor t) {
        if (t instanceof CudaTensor c && c.backend() == this) {
            return c;
        }
        throw new IllegalArgumentException(t + " does not belong to " + name());
    }

    private CudaTensor tensor(boolean bf16, int... shape) {
        long n = Arrays.stream(shape).asLongStream().reduce(1, (x, y) -> x * y);
        DeviceBuffer b = DeviceBuffer.allocateCollecting(cuda, n * (bf16 ? 2 : 4));
        cuda.zeroBytes(b.pointer(), b.bytes());
        return new CudaTensor(this, b, bf16, shape);
    }

    @Override
    public Tensor allocate(int... shape) { return tensor(false, shape); }

    @Override
    public Tensor allocateActivation(int... shape) { return tensor(precision == Precision.BF16, shape); }

    @Override
    public Tensor upload(float[] host, int... shape) {
        CudaTensor t = tensor(false, shape);
        write(t, host);
        return t;
    }

    @Override
    public void write(Tensor t, float[] host) {
        own(t).fromHost(cuda, host);
    }

    @Override
    public float[] download(Tensor t) {
        return own(t).toHost(cuda);
    }

    @Override
    public void zero(Tensor t) {
        CudaTensor c = own(t);
        cuda.zeroBytes(c.pointer(), (long) c.size() * c.elementBytes());
    }

    static void requireSize(long got, long want, String what) {
        if (got != want) {
            throw new IllegalArgumentException(what + ": size mismatch, " + got + " vs " + want);
        }
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        CudaTensor s = own(src), d = own(dst);
        requireSize(s.size(), d.size(), "copy");
        kernels.convert(s.pointer(), s.flag(), d.pointer(), d.flag(), s.size());
    }

    @Override
    public void copyRows(Tensor src, int srcRow, Tensor dst, int dstRow, int rows) {
        CudaTensor s = own(src), d = own(dst);
        int c = s.cols();
        requireSize(d.cols(), c, "copyRows width");
        if (srcRow < 0 || dstRow < 0 || rows < 0 || srcRow + rows > s.rows() || dstRow + rows > d.rows()) {
            throw new IllegalArgumentException("copyRows: rows [" + srcRow + ", +" + rows + ") of " + src + " into ["
                    + dstRow + ", +" + rows + ") of " + dst + " are out of range");
        }
        kernels.convert(s.at((long) srcRow * c), s.flag(), d.at((long) dstRow * c), d.flag(), (long) rows * c);
    }

    // ---- weights ----

    @Override
    public LinearWeight denseWeight(Tensor w) {
        return CudaLinearWeight.Dense.of(own(w), compute == DType.BF16, cuda, kernels);
    }

    @Override
    public LinearWeight quantizedWeight(QuantizedMatrix m) {
        return CudaLinearWeight.Quantized.upload(cuda, m);
    }

    @Override
    public QuantizedMatrix quantizedMatrix(LinearWeight w) {
        if (w instanceof CudaLinearWeight.Quantized q) {
            return q.download(cuda);
        }
        throw new IllegalArgumentException(w + " is not a quantized weight of " + name());
    }

    /**
     * 8192 tokens: 0.5 GB of bf16 logits and as much for their gradient at a 32000 vocabulary, against 16 waits for a
     * chunk's loss per 8192-token step at the CPU's 512 (measured in docs/PERFORMANCE.md, "GPU training").
     */
    @Override
    public int logitChunkTokens() {
        return 8192;
    }

    @Override
    public boolean foldsAdapter(LinearWeight w) {
        return foldAdapters && compute == DType.BF16 && w instanceof CudaLinearWeight.Quantized;
    }

    @Override
    public LinearWeight foldAdapter(LinearWeight w, Tensor a, Tensor b, float factor) {
        if (!foldsAdapter(w)) {
            throw new IllegalArgumentException(name() + " folds adapters only into its own quantized weights under bf16");
        }
        return fold.fold((CudaLinearWeight.Quantized) w, own(a), own(b), factor);
    }

    // ---- matrix products (CudaProducts) ----

    @Override
    public void linear(Tensor x, LinearWeight w, Tensor y) {
        products.linear(own(x), w, own(y));
    }

    @Override
    public void linears(Tensor x, List<LinearWeight> w, List<Tensor> y) {
        if (!fused.linears(own(x), w, y.stream().map(this::own).toList())) {
            Backend.super.linears(x, w, y);
        }
    }

    @Override
    public void linearPlusResidual(Tensor x, LinearWeight w, Tensor residual, Tensor product, Tensor out) {
        if (!fused.linearPlusResidual(own(x), w, own(residual), own(product), own(out))) {
            Backend.super.linearPlusResidual(x, w, residual, product, out);
        }
    }

    @Override
    public void linearPlusResidualNorm(Tensor x, LinearWeight w, Tensor residual, Tensor product, Tensor out,
                                       Tensor normWeight, float eps, Tensor normed, Tensor rstd) {
        if (!fused.linearPlusResidualNorm(own(x), w, own(residual), own(product), own(out), own(normWeight), eps,
                own(normed), own(rstd))) {
            Backend.super.linearPlusResidualNorm(x, w, residual, product, out, normWeight, eps, normed, rstd);
        }
    }

    @Override
    public void linearsRopeAndWriteCache(Tensor x, List<LinearWeight> qkv, Tensor q, Tensor k, Tensor v, Tensor cos,
                                         Tensor sin, int rows, int heads, int kvHeads, int headDim, Tensor kCache,
                                         Tensor vCache, KvCacheShape shape, IntTensor cacheRows) {
        if (!fused.linearsRopeAndWriteCache(own(x), qkv, List.of(own(q), own(k), own(v)), own(cos), own(sin), rows,
                heads, kvHeads, headDim, own(kCache), own(vCache), shape, decode.ints(cacheRows))) {
            Backend.super.linearsRopeAndWriteCache(x, qkv, q, k, v, cos, sin, rows, heads, kvHeads, headDim, kCache,
                    vCache, shape, cacheRows);
        }
    }

    @Override
    public void swigluOfLinears(Tensor x, LinearWeight wGate, LinearWeight wUp, Tensor gate, Tensor up, Tensor out) {
        if (!fused.swigluOfLinears(own(x), wGate, wUp, own(out))) {
            Backend.super.swigluOfLinears(x, wGate, wUp, gate, up, out);
        }
    }

    @Override
    public void linearBackwardInput(Tensor dy, LinearWeight w, Tensor dx, boolean accumulate) {
        products.linearBackwardInput(own(dy), w, own(dx), accumulate);
    }

    @Override
    public void matmulNT(Tensor a, Tensor b, Tensor c, boolean accumulate) {
        products.nt(own(a), own(b), own(c), 1f, accumulate);
    }

    @Override
    public void matmulNT(Tensor a, Tensor b, Tensor c, float alpha) {
        products.nt(own(a), own(b), own(c), alpha, false);
    }

    @Override
    public void matmulNN(Tensor a, Tensor b, Tensor c, boolean accumulate) {
        products.nn(own(a), own(b), own(c), 1f, accumulate);
    }

    @Override
    public void matmulNN(Tensor a, Tensor b, Tensor c, float alpha) {
        products.nn(own(a), own(b), own(c), alpha, false);
    }

    @Override
    public void matmulTN(Tensor a, Tensor b, Tensor c, boolean accumulate) {
        products.tn(own(a), own(b), own(c), accumulate);
    }

    // ---- layers ----

    /** Copies host ints into the int scratch; returns its device pointer. */
    private long uploadInts(int[] values) {
        long p = ints.get(4L * values.length);
        cuda.copyToDevice(values, p);
        return p;
    }

    @Override
    public void embedding(int[] ids, Tensor table, Tensor out) {
        CudaTensor tab = own(table), o = own(out);
        int h = tab.cols(), vocab = tab.rows();
        requireSize(o.size(), (long) ids.length * h, "embedding output");
        if (tab.bf16) {
            throw new IllegalArgumentException("the embedding table must be fp32, got " + table);
        }
        BackendChecks.tokenIds(ids, vocab);
        kernels.embedding(uploadInts(ids), tab.pointer(), o.pointer(), o.flag(), ids.length, h);
    }

    @Override
    public void embedding(IntTensor ids, Tensor table, Tensor out) {
        CudaTensor tab = own(table).fp32("the embedding table"), o = own(out);
        CudaInts i = decode.ints(ids);
        requireSize(o.size(), (long) i.size() * tab.cols(), "embedding output");
        kernels.embedding(i.pointer(), tab.pointer(), o.pointer(), o.flag(), i.size(), tab.cols());
    }

    @Override
    public IntTensor allocateInts(int n) {
        DeviceBuffer b = DeviceBuffer.allocateCollecting(cuda, 4L * Math.max(n, 1));
        cuda.zeroBytes(b.pointer(), b.bytes());
        return new CudaInts(this, b, 0, n);
    }

    @Override
    public void writeInts(IntTensor t, int[] values) {
        decode.write(decode.ints(t), values);
    }

    /**
     * Records the step as a CUDA graph after one eager warm-up run and replays it from then on ({@link CudaStepGraph});
     * with graphs off ({@link #useGraphs}, or {@code -Dqalora.cuda.graphs=false}) it runs eagerly each time.
     */
    @Override
    public RepeatedStep repeatable(Runnable step) {
        return new CudaStepGraph(CudaGraphs.of(cuda), step, graphs);
    }

    /** Whether {@link #repeatable} steps are replayed as CUDA graphs (default on; off to compare). */
    public void useGraphs(boolean on) { graphs = on; }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor rstd) {
        CudaTensor xt = own(x), w = own(weight).fp32("rmsNorm weight"), o = own(out), r = own(rstd).fp32("rstd");
        requireSize(w.size(), xt.cols(), "rmsNorm weight");
        kernels.rmsNorm(xt.pointer(), xt.flag(), w.pointer(), eps, o.pointer(), o.flag(), r.pointer(), xt.rows(),
                xt.cols());
    }

    @Override
    public void rmsNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor rstd, Tensor dx) {
        CudaTensor dy = own(dOut), xt = own(x), w = own(weight).fp32("rmsNorm weight"), r = own(rstd).fp32("rstd"),
                g = own(dx);
        kernels.rmsNormBackward(dy.pointer(), dy.flag(), xt.pointer(), xt.flag(), w.pointer(), r.pointer(),
                g.pointer(), g.flag(), xt.rows(), xt.cols());
    }

    @Override
    public void rope(Tensor x, Tensor cos, Tensor sin, int seqLen, int heads, int headDim) {
        rotate(x, cos, sin, seqLen, heads, headDim, 1f);
    }

    @Override
    public void ropeBackward(Tensor dx, Tensor cos, Tensor sin, int seqLen, int heads, int headDim) {
        rotate(dx, cos, sin, seqLen, heads, headDim, -1f);
    }

    private void rotate(Tensor x, Tensor cos, Tensor sin, int seqLen, int heads, int headDim, float sign) {
        CudaTensor xt = own(x), c = own(cos).fp32("rope table"), s = own(sin).fp32("rope table");
        requireSize(xt.cols(), (long) heads * headDim, "rope width");
        if (c.rows() < seqLen || c.cols() != headDim / 2) {
            throw new IllegalArgumentException("rope tables " + cos + " do not cover " + seqLen + " positions of dim " + headDim);
        }
        kernels.rope(xt.pointer(), xt.flag(), c.pointer(), s.pointer(), seqLen, heads, headDim, sign, xt.rows());
    }

    /**
     * The row log-sum-exp {@code [B, heads, T]}, from which backward recomputes the probabilities; on the fused bf16
     * path followed by a bf16 copy of the output (see {@link FlashAttention}).
     */
    @Override
    public Tensor attentionState(AttentionShape s) {
        return allocate(Math.toIntExact(attention.stateFloats(s)));
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, AttentionShape shape, Tensor state, Tensor out) {
        requireSize(q.size(), (long) shape.tokens() * shape.queryWidth(), "attention q");
        requireSize(k.size(), (long) shape.tokens() * shape.kvWidth(), "attention k");
        requireSize(state.size(), attention.stateFloats(shape), "attention state");
        attention.forward(own(q), own(k), own(v), shape, own(state).fp32("attention state"), own(out));
    }

    @Override
    public void cachedAttention(Tensor q, Tensor kCache, Tensor vCache, KvCacheShape shape, int[] sequences,
                                int[] positions, Tensor out) {
        decode.cachedAttention(own(q), own(kCache), own(vCache), shape, sequences, positions, own(out));
    }

    @Override
    public void cachedAttention(Tensor q, Tensor kCache, Tensor vCache, KvCacheShape shape, IntTensor rows,
                                Tensor out) {
        decode.cachedAttention(own(q), own(kCache), own(vCache), shape, decode.ints(rows), own(out));
    }

    @Override
    public void writeCacheRows(Tensor x, Tensor cache, KvCacheShape shape, IntTensor rows) {
        decode.writeCacheRows(own(x), own(cache), shape, decode.ints(rows));
    }

    @Override
    public void ropeAndWriteCache(Tensor q, Tensor k, Tensor v, Tensor cos, Tensor sin, int rows, int heads,
                                  int kvHeads, int headDim, Tensor kCache, Tensor vCache, KvCacheShape shape,
                                  IntTensor cacheRows) {
        decode.ropeAndWriteCache(own(q), own(k), own(v), own(cos).fp32("rope cos"), own(sin).fp32("rope sin"), rows,
                heads, kvHeads, headDim, own(kCache), own(vCache), shape, decode.ints(cacheRows));
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor state, AttentionShape shape,
                                  Tensor dq, Tensor dk, Tensor dv) {
        attention.backward(own(dOut), own(q), own(k), own(v), own(state).fp32("attention state"), shape, own(dq),
                own(dk), own(dv));
    }

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor out) {
        CudaTensor g = own(gate), u = own(up), o = own(out);
        requireSize(u.size(), g.size(), "swiglu");
        kernels.swiglu(g.pointer(), g.flag(), u.pointer(), u.flag(), o.pointer(), o.flag(), g.size());
    }

    @Override
    public void swigluBackward(Tensor dOut, Tensor gate, Tensor up, Tensor dGate, Tensor dUp) {
        CudaTensor dy = own(dOut), g = own(gate), u = own(up), dg = own(dGate), du = own(dUp);
        kernels.swigluBackward(dy.pointer(), dy.flag(), g.pointer(), g.flag(), u.pointer(), u.flag(), dg.pointer(),
                dg.flag(), du.pointer(), du.flag(), g.size());
    }

    @Override
    public void groupPool(Tensor x, int groupSize, float factor, Tensor out) {
        CudaTensor xt = own(x), o = own(out).fp32("pooled adapter input");
        int groups = xt.cols() / groupSize;
        requireSize(o.size(), (long) xt.rows() * groups, "groupPool output");
        kernels.groupPool(xt.pointer(), xt.flag(), groupSize, factor, o.pointer(), xt.rows(), groups);
    }

    @Override
    public void groupPoolBackward(Tensor dOut, int groupSize, float factor, Tensor dx) {
        CudaTensor dy = own(dOut).fp32("pooled gradient"), g = own(dx);
        requireSize(dy.size(), (long) g.rows() * (g.cols() / groupSize), "groupPoolBackward gradient");
        kernels.groupPoolBackward(dy.pointer(), groupSize, factor, g.pointer(), g.flag(), g.size());
    }

    @Override
    public void dropout(Tensor x, Tensor mask, float p, long seed) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + p);
        }
        CudaTensor xt = own(x), m = own(mask).fp32("dropout mask");
        requireSize(m.size(), xt.size(), "dropout mask");
        kernels.dropout(xt.pointer(), xt.flag(), m.pointer(), p, 1f / (1f - p), seed, xt.size());
    }

    @Override
    public void multiply(Tensor x, Tensor mask) {
        CudaTensor xt = own(x), m = own(mask).fp32("mask");
        requireSize(m.size(), xt.size(), "multiply");
        kernels.multiply(xt.pointer(), xt.flag(), m.pointer(), xt.size());
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        CudaTensor x = own(a), y = own(b), o = own(out);
        requireSize(y.size(), x.size(), "add");
        requireSize(o.size(), x.size(), "add output");
        kernels.add(x.pointer(), x.flag(), y.pointer(), y.flag(), o.pointer(), o.flag(), x.size());
    }

    @Override
    public void scale(Tensor x, float s) {
        CudaTensor xt = own(x);
        kernels.scale(xt.pointer(), xt.flag(), s, xt.size());
    }

    @Override
    public double crossEntropy(Tensor logits, int[] targets, float gradScale, Tensor dLogits) {
        CudaTensor l = own(logits), g = dLogits == null ? null : own(dLogits);
        int vocab = l.cols(), rows = l.rows();
        requireSize(targets.length, rows, "crossEntropy targets");
        BackendChecks.targets(targets, vocab);
        long losses = rowLoss.get(8L * rows);
        kernels.crossEntropy(l.pointer(), l.flag(), uploadInts(targets), gradScale, g == null ? 0L : g.pointer(),
                g == null ? 0 : g.flag(), g != null, losses, rows, vocab);
        double[] perRow = new double[rows];
        cuda.copyToHost(losses, MemorySegment.ofArray(perRow));
        double total = 0;
        for (double x : perRow) {
            total += x; // in row order, as the CPU
        }
        return total;
    }

    @Override
    public double sumOfSquares(Tensor x) {
        return sumOfSquares(List.of(x));
    }

    @Override
    public double sumOfSquares(List<Tensor> tensors) {
        return multi.sumOfSquares(tensors.stream().map(this::own).toList());
    }

    @Override
    public boolean allFinite(Tensor x) {
        // A non-finite element makes the double sum of squares non-finite, and finite floats cannot overflow it.
        return Double.isFinite(sumOfSquares(x));
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float gradScale, double lr, double beta1,
                      double beta2, double eps, double weightDecay, long step) {
        adamw(List.of(param), List.of(grad), List.of(m), List.of(v), gradScale, lr, beta1, beta2, eps, weightDecay,
                step);
    }

    @Override
    public void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float gradScale,
                      double lr, double beta1, double beta2, double eps, double weightDecay, long step) {
        List<CudaTensor> p = fp32All(params, "AdamW parameter"), g = fp32All(grads, "gradient"),
                mt = fp32All(m, "Adam m"), vt = fp32All(v, "Adam v");
        for (int i = 0; i < p.size(); i++) {
            requireSize(g.get(i).size(), p.get(i).size(), "adamw grad");
            requireSize(mt.get(i).size(), p.get(i).size(), "adamw m");
            requireSize(vt.get(i).size(), p.get(i).size(), "adamw v");
        }
        multi.adamw(p, g, mt, vt, gradScale, lr, beta1, beta2, eps, weightDecay, step);
    }

    private List<CudaTensor> fp32All(List<Tensor> tensors, String what) {
        return tensors.stream().map(t -> own(t).fp32(what)).toList();
    }

    @Override
    public long[] deviceMemory() {
        return new long[] {cuda.allocatedBytes(), cuda.peakAllocatedBytes()};
    }

    /** Waits for every operation enqueued so far (for timing). */
    public void synchronize() {
        cuda.synchronize();
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        cuda.synchronize();
        attention.close();
        multi.close();
        fold.close();
        products.close();
        for (DeviceScratch s : new DeviceScratch[] {ints, rowLoss}) {
            s.close();
        }
    }
}
