package org.qalora.worker.backend;

import org.qalora.quant.QuantizedMatrix;

/**
 * Every heavy operation the LLaMA forward and backward passes need. Model code is written only against this
 * interface, so a CUDA backend can be added without touching it. Conventions:
 * <ul>
 *   <li>matrices are row-major; a tensor of shape {@code [..., C]} is used as {@code [rows, C]};</li>
 *   <li>operations named {@code ...Backward} and every {@code accumulate = true} variant <em>add</em> into their
 *       gradient outputs (llm.c style), so gradient accumulation over micro-batches needs no extra buffers;</li>
 *   <li>results must not depend on thread timing: reductions run in a fixed order.</li>
 * </ul>
 */
public interface Backend extends AutoCloseable {

    String name();

    // ---- storage ----

    /** A zero-filled float32 tensor (parameters, optimizer state, statistics). */
    Tensor allocate(int... shape);

    /**
     * A zero-filled activation tensor. A mixed-precision backend stores it in bf16; every operation accepts either
     * kind wherever a tensor is taken, and {@link #download} returns floats either way.
     */
    default Tensor allocateActivation(int... shape) { return allocate(shape); }

    /** A tensor holding a copy of {@code host} (row-major, {@code host.length} must equal the shape's size). */
    Tensor upload(float[] host, int... shape);

    /**
     * A tensor made from {@code host}, which the caller hands over and must not use afterwards: the CPU backend keeps
     * the array itself instead of the copy {@link #upload} makes, so a trainer started from a state read for it holds
     * that state once (at LLaMA-7B widths 10.65 MiB per layer and part: weights, m, v); a device backend uploads it.
     */
    default Tensor adopt(float[] host, int... shape) { return upload(host, shape); }

    /**
     * The contents of a tensor its owner no longer uses, as a host array: the CPU backend hands over its own array
     * (no copy; the tensor must not be used afterwards), a device backend downloads it. What a trainer returns its
     * final state through, so the result is not a second copy beside the trainer's.
     */
    default float[] release(Tensor t) { return download(t); }

    /** Overwrites the tensor's contents with {@code host}. */
    void write(Tensor t, float[] host);

    /** A host copy of the tensor's contents. */
    float[] download(Tensor t);

    void zero(Tensor t);

    /** {@code dst = src} (same size). */
    void copy(Tensor src, Tensor dst);

    /** Copies {@code rows} rows of {@code src [*, C]} starting at {@code srcRow} into {@code dst [*, C]} at {@code dstRow}. */
    void copyRows(Tensor src, int srcRow, Tensor dst, int dstRow, int rows);

    // ---- weights ----

    /** A frozen dense weight {@code [out, in]} (the tensor is kept, not copied). */
    LinearWeight denseWeight(Tensor weightOutIn);

    /**
     * A frozen group-quantized weight, repacked once into the backend's kernel layout. The weight keeps no
     * reference to {@code matrix}: once the caller lets it go, the backend's copy is the only one (a loaded model
     * holds its weights once; {@link #quantizedMatrix} gives them back).
     */
    LinearWeight quantizedWeight(QuantizedMatrix matrix);

    /**
     * The codes, scales and zeros of a weight made by {@link #quantizedWeight}, bit for bit as they were given,
     * rebuilt from the backend's copy (the CPU's blocked arrays, or downloaded from the GPU): a fresh host copy per
     * call, for the readers that need the canonical form (the merge folds adapters into its zeros and writes it).
     */
    QuantizedMatrix quantizedMatrix(LinearWeight w);

    /**
     * Whether {@link #foldAdapter} applies to {@code w}: the training pass then runs the quantized projection with
     * its adapter folded into the zero points (QA-LoRA's merge identity) instead of a separate adapter product per
     * pass over the projection's output and input gradient. Default: no (the CPU, and fp32 on the GPU, keep the
     * two paths apart, as the HF reference computes them).
     */
    default boolean foldsAdapter(LinearWeight w) {
        return false;
    }

    /**
     * {@code w} with the adapter folded in: zero points {@code Z' = Z - factor (B A)^T / S}, i.e. the weight
     * {@code W + factor expand_g(B A)}, for {@code A [r, I/g]}, {@code B [O, r]}. Valid for the products that follow
     * until the next call; only where {@link #foldsAdapter} says so.
     */
    default LinearWeight foldAdapter(LinearWeight w, Tensor a, Tensor b, float factor) {
        throw new UnsupportedOperationException(name() + " does not fold adapters into its weights");
    }

    /**
     * Tokens per lm_head/loss chunk in training: the {@code [chunk, V]} logits and their gradient are held at once.
     * The CPU keeps them to a few tens of MB; a GPU takes larger chunks (fewer, larger lm_head products, and fewer
     * waits for a chunk's loss).
     */
    default int logitChunkTokens() {
        return 512;
    }

    // ---- matrix products ----

    /** {@code y[N, O] = x[N, I] W^T}. */
    void linear(Tensor x, LinearWeight w, Tensor y);

    /**
     * {@code y[k] = x W[k]^T} for each k: the products of one input (a layer's q, k and v). A GPU decoding one row
     * runs them as one launch; the results are those of {@link #linear} one by one.
     */
    default void linears(Tensor x, java.util.List<LinearWeight> w, java.util.List<Tensor> y) {
        for (int k = 0; k < w.size(); k++) {
            linear(x, w.get(k), y.get(k));
        }
    }

    /**
     * {@code out = residual + x W^T}, with the product in the activation type first: {@link #linear} into
     * {@code product}, then {@link #add}. A GPU decoding one row fuses the two and leaves {@code product} alone.
     */
    default void linearPlusResidual(Tensor x, LinearWeight w, Tensor residual, Tensor product, Tensor out) {
        linear(x, w, product);
        add(residual, product, out);
    }

    /**
     * {@link #linearPlusResidual}, then {@link #rmsNorm} of {@code out} into {@code normed} and {@code rstd} (a decode
     * layer's last product and the next layer's input norm). A GPU decoding one row runs the norm in the product's
     * launch, with the bits of the separate calls.
     */
    default void linearPlusResidualNorm(Tensor x, LinearWeight w, Tensor residual, Tensor product, Tensor out,
                                        Tensor normWeight, float eps, Tensor normed, Tensor rstd) {
        linearPlusResidual(x, w, residual, product, out);
        rmsNorm(out, normWeight, eps, normed, rstd);
    }

    /**
     * {@code out = silu(x Wg^T) * (x Wu^T)}: {@link #linear} into {@code gate} and {@code up}, then {@link #swiglu}.
     * A GPU decoding one row fuses the three and leaves {@code gate} and {@code up} alone.
     */
    default void swigluOfLinears(Tensor x, LinearWeight wGate, LinearWeight wUp, Tensor gate, Tensor up, Tensor out) {
        linear(x, wGate, gate);
        linear(x, wUp, up);
        swiglu(gate, up, out);
    }

    /**
     * {@code dx[N, I] (+)= dy[N, O] W}: adds with {@code accumulate}, else overwrites, so that the first of several
     * projections reading one input needs no zeroed gradient buffer.
     */
    void linearBackwardInput(Tensor dy, LinearWeight w, Tensor dx, boolean accumulate);

    /** {@code c[M, N] (+)= a[M, K] b[N, K]^T}. */
    void matmulNT(Tensor a, Tensor b, Tensor c, boolean accumulate);

    /** {@code c[M, N] (+)= a[M, K] b[K, N]}. */
    void matmulNN(Tensor a, Tensor b, Tensor c, boolean accumulate);

    /** {@code c[M, N] = alpha a[M, K] b[N, K]^T}; a GPU folds {@code alpha} into the product. */
    default void matmulNT(Tensor a, Tensor b, Tensor c, float alpha) {
        matmulNT(a, b, c, false);
        scale(c, alpha);
    }

    /** {@code c[M, N] = alpha a[M, K] b[K, N]}; a GPU folds {@code alpha} into the product. */
    default void matmulNN(Tensor a, Tensor b, Tensor c, float alpha) {
        matmulNN(a, b, c, false);
        scale(c, alpha);
    }

    /** {@code c[M, N] (+)= a[K, M]^T b[K, N]}. */
    void matmulTN(Tensor a, Tensor b, Tensor c, boolean accumulate);

    // ---- layers ----

    /** {@code out[N, H] = table[ids[n], :]}; every id must lie in {@code [0, V)}. */
    void embedding(int[] ids, Tensor table, Tensor out);

    /** {@link #embedding(int[], Tensor, Tensor)} with the ids in backend memory; the caller has checked their range. */
    void embedding(IntTensor ids, Tensor table, Tensor out);

    /** {@code n} zeroed integers in backend memory. */
    IntTensor allocateInts(int n);

    /** Writes {@code values} (all of {@code t}); ordered before the backend's later operations. */
    void writeInts(IntTensor t, int[] values);

    /**
     * The operations {@code step} makes, to be run many times over the same tensors (see {@link RepeatedStep}).
     * The CPU runs {@code step} each time; a GPU may record it once and replay the recording.
     */
    default RepeatedStep repeatable(Runnable step) {
        return new RepeatedStep() {
            private boolean closed;

            @Override
            public void run() {
                if (closed) {
                    throw new IllegalStateException("this repeated step was closed");
                }
                step.run();
            }

            @Override
            public void close() { closed = true; }
        };
    }

    /** HF LlamaRMSNorm: {@code out = w * x / sqrt(mean(x^2) + eps)}; {@code rstd[N]} keeps the reciprocal. */
    void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor rstd);

    /** {@code dx[N, H] += d rmsNorm / dx . dOut}; the weight is frozen. */
    void rmsNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor rstd, Tensor dx);

    /**
     * Rotary embedding in place, HF rotate-half pairing (dim {@code i} with {@code i + d/2}) on {@code x [B*T, heads*d]},
     * position = index within the sequence; {@code cos, sin [T_max, d/2]}.
     */
    void rope(Tensor x, Tensor cos, Tensor sin, int seqLen, int heads, int headDim);

    /**
     * A decode step's rotary embedding and cache write: {@link #rope} on {@code q} and {@code k} (row n at table row
     * n of {@code cos, sin}), then {@link #writeCacheRows} of {@code k} and {@code v}. A GPU runs the four as one launch.
     */
    default void ropeAndWriteCache(Tensor q, Tensor k, Tensor v, Tensor cos, Tensor sin, int rows, int heads,
                                   int kvHeads, int headDim, Tensor kCache, Tensor vCache, KvCacheShape shape,
                                   IntTensor cacheRows) {
        rope(q, cos, sin, rows, heads, headDim);
        rope(k, cos, sin, rows, kvHeads, headDim);
        writeCacheRows(k, kCache, shape, cacheRows);
        writeCacheRows(v, vCache, shape, cacheRows);
    }

    /**
     * {@link #linears} of a decode step's q, k and v ({@code qkv}, in that order), then {@link #ropeAndWriteCache}. A
     * GPU decoding one row runs the four in one launch, with the bits of the separate calls.
     */
    default void linearsRopeAndWriteCache(Tensor x, java.util.List<LinearWeight> qkv, Tensor q, Tensor k, Tensor v,
                                          Tensor cos, Tensor sin, int rows, int heads, int kvHeads, int headDim,
                                          Tensor kCache, Tensor vCache, KvCacheShape shape, IntTensor cacheRows) {
        linears(x, qkv, java.util.List.of(q, k, v));
        ropeAndWriteCache(q, k, v, cos, sin, rows, heads, kvHeads, headDim, kCache, vCache, shape, cacheRows);
    }

    /** The transpose of {@link #rope} (rotation by the negative angle), in place on the gradient. */
    void ropeBackward(Tensor dx, Tensor cos, Tensor sin, int seqLen, int heads, int headDim);

    /**
     * What {@link #attention} keeps for its backward, allocated once per layer: the CPU keeps the softmax
     * {@code [B, heads, T, T]}; the GPU keeps only each row's log-sum-exp {@code [B, heads, T]} and recomputes the
     * probabilities in backward, so no {@code T x T} matrix outlives the call.
     */
    Tensor attentionState(AttentionShape shape);

    /**
     * Causal softmax attention. {@code q [B*T, heads*d]}, {@code k, v [B*T, kvHeads*d]} (rope applied),
     * {@code state} from {@link #attentionState} receives what backward needs, {@code out [B*T, heads*d]}.
     */
    void attention(Tensor q, Tensor k, Tensor v, AttentionShape shape, Tensor state, Tensor out);

    /** Writes (not adds) the gradients of {@link #attention} into {@code dq, dk, dv}. */
    void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor state, AttentionShape shape,
                           Tensor dq, Tensor dk, Tensor dv);

    /**
     * Attention of new query rows against a key/value cache (generation, no backward). Row {@code n} of
     * {@code q [N, heads*d]} (rope applied) is the token at position {@code positions[n]} of sequence
     * {@code sequences[n]}; it attends to that sequence's cached keys and values at positions
     * {@code 0..positions[n]} (its own included, so they must already be written), rows
     * {@link KvCacheShape#row} of {@code kCache, vCache [S*capacity, kvHeads*d]}. Writes {@code out [N, heads*d]}.
     * For a row at position {@code t} the result equals row {@code t} of {@link #attention} over that sequence.
     */
    void cachedAttention(Tensor q, Tensor kCache, Tensor vCache, KvCacheShape shape, int[] sequences, int[] positions,
                         Tensor out);

    /**
     * {@link #cachedAttention(Tensor, Tensor, Tensor, KvCacheShape, int[], int[], Tensor)} with the rows in backend
     * memory: {@code rows [2N]} holds the sequences, then the positions (checked by the caller when written).
     */
    void cachedAttention(Tensor q, Tensor kCache, Tensor vCache, KvCacheShape shape, IntTensor rows, Tensor out);

    /**
     * Writes row {@code n} of {@code x [N, C]} to cache row {@link KvCacheShape#row}{@code (rows[n], rows[N + n])}
     * of {@code cache [S*capacity, C]}; {@code rows [2N]} as in {@link #cachedAttention(Tensor, Tensor, Tensor,
     * KvCacheShape, IntTensor, Tensor)}.
     */
    void writeCacheRows(Tensor x, Tensor cache, KvCacheShape shape, IntTensor rows);

    /** {@code out = silu(gate) * up}, all {@code [N, F]}. */
    void swiglu(Tensor gate, Tensor up, Tensor out);

    /** Writes (not adds) {@code dGate, dUp [N, F]} from {@code dOut [N, F]}. */
    void swigluBackward(Tensor dOut, Tensor gate, Tensor up, Tensor dGate, Tensor dUp);

    /** QA-LoRA pooling: {@code out[n, k] = factor * sum_{j<g} x[n, k*g + j]}, {@code x [N, G*g]}, {@code out [N, G]}. */
    void groupPool(Tensor x, int groupSize, float factor, Tensor out);

    /** {@code dx[n, i] += factor * dOut[n, i / g]}. */
    void groupPoolBackward(Tensor dOut, int groupSize, float factor, Tensor dx);

    /**
     * Inverted dropout in place: draws {@code mask} (0 or {@code 1/(1-p)}) from {@code seed} in a fixed order,
     * then {@code x *= mask}.
     */
    void dropout(Tensor x, Tensor mask, float p, long seed);

    /** {@code x *= mask} elementwise. */
    void multiply(Tensor x, Tensor mask);

    /** {@code out = a + b}. */
    void add(Tensor a, Tensor b, Tensor out);

    /** {@code x *= s}. */
    void scale(Tensor x, float s);

    /**
     * Cross-entropy of {@code logits [N, V]} against {@code targets[N]} ({@code -100} = ignored). Returns the
     * <em>sum</em> of the per-token losses (in double); if {@code dLogits} is given, writes
     * {@code gradScale * (softmax - onehot)} on target rows and 0 elsewhere.
     */
    double crossEntropy(Tensor logits, int[] targets, float gradScale, Tensor dLogits);

    /** {@code sum(x^2)} in double, fixed order. */
    double sumOfSquares(Tensor x);

    /**
     * {@code sum over tensors of sum(t^2)} in double, in a fixed order: the global gradient norm. A device backend
     * does it in one pass and one copy to the host.
     */
    default double sumOfSquares(java.util.List<Tensor> tensors) {
        double s = 0;
        for (Tensor t : tensors) {
            s += sumOfSquares(t);
        }
        return s;
    }

    /** True when every element is finite. */
    boolean allFinite(Tensor x);

    /**
     * One PyTorch AdamW step on one parameter (decoupled weight decay, bias correction):
     * {@code g = gradScale * grad}; {@code p *= 1 - lr wd}; {@code m = b1 m + (1-b1) g}; {@code v = b2 v + (1-b2) g^2};
     * {@code p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)}.
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float gradScale, double lr, double beta1,
               double beta2, double eps, double weightDecay, long step);

    /**
     * {@link #adamw} on every parameter {@code params[i]} with {@code grads[i], m[i], v[i]}: one fused launch on a
     * device backend.
     */
    default void adamw(java.util.List<Tensor> params, java.util.List<Tensor> grads, java.util.List<Tensor> m,
                       java.util.List<Tensor> v, float gradScale, double lr, double beta1, double beta2, double eps,
                       double weightDecay, long step) {
        for (int i = 0; i < params.size(); i++) {
            adamw(params.get(i), grads.get(i), m.get(i), v.get(i), gradScale, lr, beta1, beta2, eps, weightDecay, step);
        }
    }

    /** Device bytes this backend holds now and at most so far ({0, 0} on the CPU). */
    default long[] deviceMemory() { return new long[] {0, 0}; }

    @Override
    void close();
}
