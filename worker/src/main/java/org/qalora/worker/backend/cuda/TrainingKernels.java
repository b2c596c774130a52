package org.qalora.worker.backend.cuda;

import java.lang.foreign.MemorySegment;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.QuantKernelModule;

/**
 * Typed launchers for {@code training_kernels.cu} (PTX from the quant-kernels jar) on one device. Grids and blocks
 * are chosen here, next to each kernel's layout comment in the .cu file. Pointers are device addresses; each
 * tensor pointer that may be bf16 travels with its flag (1 = bf16).
 */
final class TrainingKernels {
    private static final int BLOCK = 256;

    private final CudaDriver cuda;
    private final int maxBlocks;
    private final MemorySegment convert, add, multiply, scale, swiglu, swigluBackward, embedding, rmsNorm,
            rmsNormBackward, rope, groupPool, groupPoolBackward, groupPoolVec, groupPoolBackwardVec, dropout, crossEntropy, sumsqPartial, sumsqFinal,
            adamw, softmaxForward, softmaxBackward, foldZeros, addVec, swigluVec, swigluBackwardVec, cachedAttention,
            cacheWrite, ropeCacheWrite;

    TrainingKernels(CudaDriver cuda) {
        this.cuda = cuda;
        this.maxBlocks = cuda.multiprocessors() * 16;
        MemorySegment m = QuantKernelModule.loadModule(cuda, "training_kernels");
        convert = cuda.function(m, "convert");
        add = cuda.function(m, "add");
        multiply = cuda.function(m, "multiply");
        scale = cuda.function(m, "scale");
        swiglu = cuda.function(m, "swiglu");
        swigluBackward = cuda.function(m, "swiglu_backward");
        embedding = cuda.function(m, "embedding");
        rmsNorm = cuda.function(m, "rmsnorm");
        rmsNormBackward = cuda.function(m, "rmsnorm_backward");
        rope = cuda.function(m, "rope");
        groupPool = cuda.function(m, "group_pool");
        groupPoolBackward = cuda.function(m, "group_pool_backward");
        groupPoolVec = cuda.function(m, "group_pool_vec");
        groupPoolBackwardVec = cuda.function(m, "group_pool_backward_vec");
        dropout = cuda.function(m, "dropout");
        crossEntropy = cuda.function(m, "cross_entropy");
        sumsqPartial = cuda.function(m, "sumsq_partial");
        sumsqFinal = cuda.function(m, "sumsq_final");
        adamw = cuda.function(m, "adamw");
        softmaxForward = cuda.function(m, "softmax_forward");
        softmaxBackward = cuda.function(m, "softmax_backward");
        foldZeros = cuda.function(m, "fold_zeros");
        addVec = cuda.function(m, "add_vec");
        swigluVec = cuda.function(m, "swiglu_vec");
        swigluBackwardVec = cuda.function(m, "swiglu_backward_vec");
        cachedAttention = cuda.function(m, "cached_attention");
        cacheWrite = cuda.function(m, "cache_write");
        ropeCacheWrite = cuda.function(m, "rope_cache_write");
    }

    /** Blocks of a grid-stride elementwise launch over {@code n} elements. */
    private int blocks(long n) {
        return (int) Math.max(1, Math.min(maxBlocks, (n + BLOCK - 1) / BLOCK));
    }

    private void elementwise(MemorySegment f, String name, long n, Object... args) {
        cuda.launch(f, name, blocks(n), 1, 1, BLOCK, 1, 1, 0, args);
    }

    void convert(long src, int srcBf, long dst, int dstBf, long n) {
        elementwise(convert, "convert", n, src, srcBf, dst, dstBf, n);
    }

    /** Whole tensors of a multiple of 8 elements take the 16-byte kernels (same results, bit for bit). */
    private static boolean vector8(long n) {
        return n % 8 == 0;
    }

    void add(long a, int aBf, long b, int bBf, long out, int oBf, long n) {
        if (vector8(n)) {
            elementwise(addVec, "add_vec", n / 8, a, aBf, b, bBf, out, oBf, n / 8);
        } else {
            elementwise(add, "add", n, a, aBf, b, bBf, out, oBf, n);
        }
    }

    void multiply(long x, int xBf, long mask, long n) {
        elementwise(multiply, "multiply", n, x, xBf, mask, n);
    }

    void scale(long x, int xBf, float s, long n) {
        elementwise(scale, "scale", n, x, xBf, s, n);
    }

    void swiglu(long gate, int gBf, long up, int uBf, long out, int oBf, long n) {
        if (vector8(n)) {
            elementwise(swigluVec, "swiglu_vec", n / 8, gate, gBf, up, uBf, out, oBf, n / 8);
        } else {
            elementwise(swiglu, "swiglu", n, gate, gBf, up, uBf, out, oBf, n);
        }
    }

    void swigluBackward(long dOut, int dBf, long gate, int gBf, long up, int uBf, long dGate, int dgBf, long dUp,
                        int duBf, long n) {
        if (vector8(n)) {
            elementwise(swigluBackwardVec, "swiglu_backward_vec", n / 8, dOut, dBf, gate, gBf, up, uBf, dGate, dgBf,
                    dUp, duBf, n / 8);
        } else {
            elementwise(swigluBackward, "swiglu_backward", n, dOut, dBf, gate, gBf, up, uBf, dGate, dgBf, dUp, duBf, n);
        }
    }

    void embedding(long ids, long table, long out, int oBf, int rows, int hidden) {
        cuda.launch(embedding, "embedding", rows, 1, 1, BLOCK, 1, 1, 0, ids, table, out, oBf, hidden);
    }

    void rmsNorm(long x, int xBf, long w, float eps, long out, int oBf, long rstd, int rows, int hidden) {
        cuda.launch(rmsNorm, "rmsnorm", rows, 1, 1, BLOCK, 1, 1, 0, x, xBf, w, eps, out, oBf, rstd, hidden);
    }

    void rmsNormBackward(long dOut, int dBf, long x, int xBf, long w, long rstd, long dx, int dxBf, int rows,
                         int hidden) {
        cuda.launch(rmsNormBackward, "rmsnorm_backward", rows, 1, 1, BLOCK, 1, 1, 0, dOut, dBf, x, xBf, w, rstd, dx,
                dxBf, hidden);
    }

    void rope(long x, int xBf, long cos, long sin, int seqLen, int heads, int headDim, float sign, long rows) {
        if (rows * heads * (headDim / 2) >= (1L << 31)) {
            throw new IllegalArgumentException("rope over " + rows + " rows x " + heads + " heads: the kernel indexes "
                    + "with 32 bits (below 2^31 elements, so the grid stride cannot wrap); split the batch");
        }
        elementwise(rope, "rope", rows * heads * (headDim / 2), x, xBf, cos, sin, seqLen, heads, headDim, sign, rows);
    }

    /** Group sizes that are a multiple of 8 take the 16-byte kernels (same results, bit for bit). */
    static boolean vectorGroups(int groupSize) {
        return groupSize % 8 == 0;
    }

    void groupPool(long x, int xBf, int groupSize, float factor, long out, long rows, int groups) {
        if (vectorGroups(groupSize)) {
            elementwise(groupPoolVec, "group_pool_vec", rows * groups, x, xBf, groupSize, factor, out, rows, groups);
        } else {
            elementwise(groupPool, "group_pool", rows * groups, x, xBf, groupSize, factor, out, rows, groups);
        }
    }

    void groupPoolBackward(long dOut, int groupSize, float factor, long dx, int dxBf, long total) {
        if (vectorGroups(groupSize)) {
            long groupsTotal = total / groupSize;
            elementwise(groupPoolBackwardVec, "group_pool_backward_vec", groupsTotal, dOut, groupSize, factor, dx,
                    dxBf, groupsTotal);
        } else {
            elementwise(groupPoolBackward, "group_pool_backward", total, dOut, groupSize, factor, dx, dxBf, total);
        }
    }

    /** {@code out[g, o] = zeros[g, o] - factor * ba[o, g] / scales[g, o]}; see fold_zeros in the .cu file. */
    void foldZeros(long zeros, long scales, long ba, float factor, long out, int groups, int outFeatures) {
        elementwise(foldZeros, "fold_zeros", (long) groups * outFeatures, zeros, scales, ba, factor, out, groups,
                outFeatures);
    }

    void dropout(long x, int xBf, long mask, float p, float keep, long seed, long n) {
        elementwise(dropout, "dropout", n, x, xBf, mask, p, keep, seed, n);
    }

    void crossEntropy(long logits, int lBf, long targets, float gradScale, long dLogits, int dBf, boolean grad,
                      long rowLoss, int rows, int vocab) {
        cuda.launch(crossEntropy, "cross_entropy", rows, 1, 1, BLOCK, 1, 1, 0, logits, lBf, targets, gradScale,
                dLogits, dBf, grad ? 1 : 0, rowLoss, vocab);
    }

    /** Blocks per tensor of the multi-tensor kernels: enough to fill the GPU for the largest tensor. */
    static int blocksPerTensor(long largest, int tensors, int multiprocessors) {
        long wanted = (largest + BLOCK - 1) / BLOCK;
        long cap = Math.max(1, (long) multiprocessors * 8 / Math.max(1, tensors));
        return (int) Math.max(1, Math.min(Math.min(wanted, cap), 64));
    }

    void sumOfSquares(long table, int tensors, int blocksPerTensor, long partial, long out) {
        cuda.launch(sumsqPartial, "sumsq_partial", blocksPerTensor, tensors, 1, BLOCK, 1, 1, 0, table, partial);
        cuda.launch(sumsqFinal, "sumsq_final", 1, 1, 1, 32, 1, 1, 0, partial, tensors, blocksPerTensor, out);
    }

    void adamw(long table, int tensors, int blocksPerTensor, float gradScale, double beta1, double beta2,
               double stepSize, double decay, double bc2Sqrt, double eps) {
        cuda.launch(adamw, "adamw", blocksPerTensor, tensors, 1, BLOCK, 1, 1, 0, table, gradScale, beta1, 1 - beta1,
                beta2, 1 - beta2, stepSize, decay, bc2Sqrt, eps);
    }

    /** One chunk of score rows: {@code items} matrices of T x T; see softmax_forward in the .cu file. */
    void softmaxForward(long s, long p, int pBf, long lse, int seqLen, int items, float scale, int b, int heads,
                        int kv0, int rep, int j) {
        long rows = (long) items * seqLen;
        cuda.launch(softmaxForward, "softmax_forward", (int) ((rows + 3) / 4), 1, 1, 128, 1, 1, 0, s, p, pBf, lse,
                seqLen, items, scale, b, heads, kv0, rep, j);
    }

    /** Keys one row of {@code cached_attention} can see: its scores must fit the 48 KiB of shared memory. */
    static final int CACHED_ATTENTION_MAX_KEYS = 11 * 1024;

    /** One block of 256 threads per (row, query head); {@code info} = sequences then positions, {@code rows} ints each. */
    void cachedAttention(long q, int qBf, long k, long v, int kvBf, long info, int rows, int capacity, int heads,
                         int kvHeads, int headDim, float scale, long out, int oBf, int maxKeys) {
        cuda.launch(cachedAttention, "cached_attention", rows * heads, 1, 1, 256, 1, 1, 4 * maxKeys, q, qBf, k, v,
                kvBf, info, rows, capacity, heads, kvHeads, headDim, scale, out, oBf);
    }

    /** A decode step's RoPE on q and k and cache write of k and v; a block of 64 threads per (row, head of q, k, v). */
    void ropeCacheWrite(long q, int qBf, long k, int kBf, long v, int vBf, long cos, long sin, long kCache,
                        long vCache, int cacheBf, long info, int rows, int capacity, int heads, int kvHeads,
                        int headDim) {
        cuda.launch(ropeCacheWrite, "rope_cache_write", rows, heads + 2 * kvHeads, 1, 64, 1, 1, 0, q, qBf, k, kBf, v,
                vBf, cos, sin, kCache, vCache, cacheBf, info, rows, capacity, heads, kvHeads, headDim);
    }

    /** Row n of {@code src [rows, width]} to cache row {@code info[n] * capacity + info[rows + n]}; one block per row. */
    void cacheWrite(long src, int srcBf, long cache, int cacheBf, long info, int rows, int capacity, int width) {
        cuda.launch(cacheWrite, "cache_write", rows, 1, 1, BLOCK, 1, 1, 0, src, srcBf, cache, cacheBf, info, rows,
                capacity, width);
    }

    void softmaxBackward(long s, long dP, long lse, long p, int pBf, long dS, int sBf, int seqLen, int items,
                         float scale, int b, int heads, int kv0, int rep, int j) {
        long rows = (long) items * seqLen;
        cuda.launch(softmaxBackward, "softmax_backward", (int) ((rows + 3) / 4), 1, 1, 128, 1, 1, 0, s, dP, lse, p,
                pBf, dS, sBf, seqLen, items, scale, b, heads, kv0, rep, j);
    }
}
