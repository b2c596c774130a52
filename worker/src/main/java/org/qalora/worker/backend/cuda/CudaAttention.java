package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.Cublas;
import org.qalora.quant.cuda.Cublas.DType;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.worker.backend.AttentionShape;

/**
 * Causal GQA attention on the GPU. In bf16 with a head dimension {@link FlashAttention} has kernels for, the fused
 * flash-attention kernels do it all. Otherwise (fp32, the exact mode, or other head dimensions) the products are cuBLAS strided-batched GEMMs (tensor cores in bf16) over the
 * heads of one sequence, the softmax is a kernel, and nothing of size {@code T x T} outlives a call. The forward
 * keeps each row's log-sum-exp ({@code lse [B, H, T]}); the backward recomputes {@code S = Q K^T} and
 * {@code P = exp(scale S - lse)} chunk by chunk, as flash attention does, but through cuBLAS instead of one fused
 * kernel. Work is cut into chunks of at most {@link #CHUNK_SCORES} scores, so memory stays bounded at long T.
 *
 * <p>Layout: {@code q [B*T, H*d]}, {@code k, v [B*T, KV*d]}; query head {@code h} reads kv head {@code h / rep}
 * ({@code rep = H / KV}). A call covers one sequence {@code b}, one query head {@code j} of each kv group and a
 * range of kv heads: the heads of the batch are then {@code rep*d} columns apart in q and {@code d} in k and v, a
 * constant stride, which is what a strided-batched GEMM needs.
 */
final class CudaAttention implements AutoCloseable {
    /** Scores per chunk (fp32 S and dP, compute-type P and dS): 64 Mi scores, at most 1.25 GiB of scratch. */
    static final long CHUNK_SCORES = 64L << 20;

    private final TrainingKernels kernels;
    private final Operands operands;
    private final Cublas blas;
    private final DType compute;
    private final DeviceScratch scores, probs, dProbs, dScores;
    private final DeviceScratch convQ, convK, convV, convDOut, rowDots;
    private final FlashAttention flash;
    private volatile int blocks = 1;
    private volatile boolean fusedAllowed = true;

    CudaAttention(CudaDriver cuda, TrainingKernels kernels, Cublas blas, DType compute, Operands operands) {
        this.kernels = kernels;
        this.flash = compute == DType.BF16 ? new FlashAttention(cuda) : null;
        rowDots = new DeviceScratch(cuda);
        this.operands = operands;
        this.blas = blas;
        this.compute = compute;
        scores = new DeviceScratch(cuda);
        probs = new DeviceScratch(cuda);
        dProbs = new DeviceScratch(cuda);
        dScores = new DeviceScratch(cuda);
        convQ = new DeviceScratch(cuda);
        convK = new DeviceScratch(cuda);
        convV = new DeviceScratch(cuda);
        convDOut = new DeviceScratch(cuda);
    }

    private long operand(CudaTensor t, DeviceScratch slot) {
        return operands.as(t, compute, slot);
    }

    /** Causal blocks per sequence (1: full T x T products); see {@link #blockRows}. */
    void blocks(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("attention blocks must be at least 1, got " + n);
        }
        blocks = n;
    }

    private boolean fused(AttentionShape s) {
        return fusedAllowed && flash != null && FlashAttention.supports(s.headDim());
    }

    /** Off: the unfused cuBLAS path in bf16 too (for benchmarks that compare the two); states change size with it. */
    void allowFused(boolean on) {
        fusedAllowed = on;
    }

    /** Floats of the state one forward keeps for its backward: the row lse, and for the fused path a copy of O. */
    long stateFloats(AttentionShape s) {
        return fused(s) ? FlashAttention.stateFloats(s) : (long) s.batch() * s.heads() * s.seqLen();
    }

    private int itemsPerChunk(AttentionShape s) {
        long perItem = (long) s.seqLen() * s.seqLen();
        return (int) Math.max(1, Math.min(s.kvHeads(), CHUNK_SCORES / perItem));
    }

    /**
     * Query rows per causal block: with {@code blocks} blocks, the products for block i only span the keys up to its
     * last row, so {@code (blocks + 1) / (2 blocks)} of the full {@code T x T} work is done (1 block: all of it).
     */
    private int blockRows(int T) {
        return (T + blocks - 1) / blocks;
    }

    /** {@code out = softmax(scale Q K^T, causal) V}; {@code lse [B*H*T]} fp32. */
    void forward(CudaTensor q, CudaTensor k, CudaTensor v, AttentionShape s, CudaTensor lse, CudaTensor out) {
        if (fused(s)) {
            flash.forward(operand(q, convQ), operand(k, convK), operand(v, convV), out, s, lse);
            return;
        }
        int T = s.seqLen(), H = s.heads(), KV = s.kvHeads(), d = s.headDim(), rep = H / KV;
        int qw = s.queryWidth(), kw = s.kvWidth(), chunk = itemsPerChunk(s), tb = blockRows(T);
        float scale = (float) (1.0 / Math.sqrt(d));
        int cb = compute.bytes(), ob = out.elementBytes();
        long qp = operand(q, convQ), kp = operand(k, convK), vp = operand(v, convV);
        long tt = (long) T * T;
        long sPtr = scores.get(4L * chunk * tt), pPtr = probs.get((long) cb * chunk * tt);
        DType outType = out.bf16 ? DType.BF16 : DType.F32;
        for (int b = 0; b < s.batch(); b++) {
            for (int j = 0; j < rep; j++) {
                for (int kv0 = 0; kv0 < KV; kv0 += chunk) {
                    int items = Math.min(chunk, KV - kv0);
                    long qOff = (long) b * T * qw + (long) (kv0 * rep + j) * d, kOff = (long) b * T * kw + (long) kv0 * d;
                    long qs = (long) rep * d;
                    for (int r0 = 0; r0 < T; r0 += tb) {
                        int rows = Math.min(tb, T - r0), keys = r0 + rows;
                        // S[r0.., 0..keys) = Q[r0..] K[0..keys)^T  (fp32)
                        blas.gemm(false, true, rows, keys, d, 1f, qp + (qOff + (long) r0 * qw) * cb, compute, qw, qs,
                                kp + kOff * cb, compute, kw, d, 0f, sPtr + 4L * r0 * T, DType.F32, T, tt, items);
                    }
                    kernels.softmaxForward(sPtr, pPtr, flag(), lse.pointer(), T, items, scale, b, H, kv0, rep, j);
                    for (int r0 = 0; r0 < T; r0 += tb) {
                        int rows = Math.min(tb, T - r0), keys = r0 + rows;
                        // O[r0..] = P[r0.., 0..keys) V[0..keys)  into the head's columns of out
                        blas.gemm(false, false, rows, d, keys, 1f, pPtr + (long) cb * r0 * T, compute, T, tt,
                                vp + kOff * cb, compute, kw, d, 0f, out.at(qOff + (long) r0 * qw), outType, qw, qs,
                                items);
                    }
                }
            }
        }
    }

    /**
     * Writes the gradients into {@code dq, dk, dv} (each query head's dq once; dk and dv of a kv group are written
     * by its first query head, j = 0, and added to by the others); reads the forward's {@code lse}.
     */
    void backward(CudaTensor dOut, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor lse, AttentionShape s,
                  CudaTensor dq, CudaTensor dk, CudaTensor dv) {
        if (fused(s)) {
            long dots = rowDots.get(4L * s.batch() * s.heads() * s.seqLen());
            flash.backward(operand(dOut, convDOut), operand(q, convQ), operand(k, convK), operand(v, convV), lse, s,
                    dots, dq, dk, dv);
            return;
        }
        int T = s.seqLen(), H = s.heads(), KV = s.kvHeads(), d = s.headDim(), rep = H / KV;
        int qw = s.queryWidth(), kw = s.kvWidth(), chunk = itemsPerChunk(s), tb = blockRows(T);
        float scale = (float) (1.0 / Math.sqrt(d));
        int cb = compute.bytes();
        long qp = operand(q, convQ), kp = operand(k, convK), vp = operand(v, convV), op = operand(dOut, convDOut);
        long tt = (long) T * T;
        long sPtr = scores.get(4L * chunk * tt), pPtr = probs.get((long) cb * chunk * tt);
        long dpPtr = dProbs.get(4L * chunk * tt), dsPtr = dScores.get((long) cb * chunk * tt);
        for (int b = 0; b < s.batch(); b++) {
            // The query heads of one kv group add into the same dk, dv rows: j runs in order, so the sum order is fixed.
            for (int j = 0; j < rep; j++) {
                for (int kv0 = 0; kv0 < KV; kv0 += chunk) {
                    int items = Math.min(chunk, KV - kv0);
                    long qOff = (long) b * T * qw + (long) (kv0 * rep + j) * d, kOff = (long) b * T * kw + (long) kv0 * d;
                    long qs = (long) rep * d;
                    float kvBeta = j == 0 ? 0f : 1f;
                    for (int r0 = 0; r0 < T; r0 += tb) {
                        int rows = Math.min(tb, T - r0), keys = r0 + rows;
                        blas.gemm(false, true, rows, keys, d, 1f, qp + (qOff + (long) r0 * qw) * cb, compute, qw, qs,
                                kp + kOff * cb, compute, kw, d, 0f, sPtr + 4L * r0 * T, DType.F32, T, tt, items); // S
                        blas.gemm(false, true, rows, keys, d, 1f, op + (qOff + (long) r0 * qw) * cb, compute, qw, qs,
                                vp + kOff * cb, compute, kw, d, 0f, dpPtr + 4L * r0 * T, DType.F32, T, tt, items); // dP = dO V^T
                    }
                    kernels.softmaxBackward(sPtr, dpPtr, lse.pointer(), pPtr, flag(), dsPtr, flag(), T, items, scale,
                            b, H, kv0, rep, j);                                                    // P, dS
                    for (int r0 = 0; r0 < T; r0 += tb) {
                        int rows = Math.min(tb, T - r0), keys = r0 + rows;
                        blas.gemm(false, false, rows, d, keys, 1f, dsPtr + (long) cb * r0 * T, compute, T, tt,
                                kp + kOff * cb, compute, kw, d, 0f, dq.at(qOff + (long) r0 * qw), type(dq), qw, qs,
                                items);                                                            // dQ = dS K
                    }
                    for (int c0 = 0; c0 < T; c0 += tb) {
                        int cols = Math.min(tb, T - c0), queries = T - c0;  // keys c0.. are seen by queries c0..T-1
                        long sub = (long) c0 * T + c0;
                        blas.gemm(true, false, cols, d, queries, 1f, pPtr + cb * sub, compute, T, tt,
                                op + (qOff + (long) c0 * qw) * cb, compute, qw, qs, kvBeta, dv.at(kOff + (long) c0 * kw),
                                type(dv), kw, d, items);                                           // dV (+)= P^T dO
                        blas.gemm(true, false, cols, d, queries, 1f, dsPtr + cb * sub, compute, T, tt,
                                qp + (qOff + (long) c0 * qw) * cb, compute, qw, qs, kvBeta, dk.at(kOff + (long) c0 * kw),
                                type(dk), kw, d, items);                                           // dK (+)= dS^T Q
                    }
                }
            }
        }
    }

    private int flag() { return compute == DType.BF16 ? 1 : 0; }

    private static DType type(CudaTensor t) { return Operands.type(t); }

    @Override
    public void close() {
        for (DeviceScratch d : new DeviceScratch[] {scores, probs, dProbs, dScores, convQ, convK, convV, convDOut, rowDots}) {
            d.close();
        }
    }
}
