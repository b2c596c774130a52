package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.Cublas;
import org.qalora.quant.cuda.Cublas.DType;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.worker.backend.AttentionShape;

/**
 * Causal GQA attention on the GPU: the products are cuBLAS strided-batched GEMMs (tensor cores in bf16) over the
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
    private final Cublas blas;
    private final DType compute;
    private final DeviceScratch scores, probs, dProbs, dScores;
    private final DeviceScratch convQ, convK, convV, convDOut;

    CudaAttention(CudaDriver cuda, TrainingKernels kernels, Cublas blas, DType compute) {
        this.kernels = kernels;
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

    /** A tensor as a GEMM operand of the compute type: itself, or a converted copy in {@code slot}. */
    private long operand(CudaTensor t, DeviceScratch slot) {
        boolean wantBf = compute == DType.BF16;
        if (t.bf16 == wantBf) {
            return t.pointer();
        }
        long p = slot.get((long) t.size() * compute.bytes());
        kernels.convert(t.pointer(), t.flag(), p, wantBf ? 1 : 0, t.size());
        return p;
    }

    private int itemsPerChunk(AttentionShape s) {
        long perItem = (long) s.seqLen() * s.seqLen();
        return (int) Math.max(1, Math.min(s.kvHeads(), CHUNK_SCORES / perItem));
    }

    /** {@code out = softmax(scale Q K^T, causal) V}; {@code lse [B*H*T]} fp32. */
    void forward(CudaTensor q, CudaTensor k, CudaTensor v, AttentionShape s, CudaTensor lse, CudaTensor out) {
        int T = s.seqLen(), H = s.heads(), KV = s.kvHeads(), d = s.headDim(), rep = H / KV;
        int qw = s.queryWidth(), kw = s.kvWidth(), chunk = itemsPerChunk(s);
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
                    // S[i] = Q_h K_kv^T  [T, T] fp32
                    blas.gemm(false, true, T, T, d, 1f, qp + qOff * cb, compute, qw, (long) rep * d,
                            kp + kOff * cb, compute, kw, d, 0f, sPtr, DType.F32, T, tt, items);
                    kernels.softmaxForward(sPtr, pPtr, flag(), lse.pointer(), T, items, scale, b, H, kv0, rep, j);
                    // O_h = P V_kv  [T, d] into the head's columns of out
                    blas.gemm(false, false, T, d, T, 1f, pPtr, compute, T, tt, vp + kOff * cb, compute, kw, d,
                            0f, out.pointer() + qOff * ob, outType, qw, (long) rep * d, items);
                }
            }
        }
    }

    /** Adds the gradients into {@code dq, dk, dv}; reads the forward's {@code lse}. */
    void backward(CudaTensor dOut, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor lse, AttentionShape s,
                  CudaTensor dq, CudaTensor dk, CudaTensor dv) {
        int T = s.seqLen(), H = s.heads(), KV = s.kvHeads(), d = s.headDim(), rep = H / KV;
        int qw = s.queryWidth(), kw = s.kvWidth(), chunk = itemsPerChunk(s);
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
                    blas.gemm(false, true, T, T, d, 1f, qp + qOff * cb, compute, qw, qs, kp + kOff * cb, compute, kw,
                            d, 0f, sPtr, DType.F32, T, tt, items);                                 // S = Q K^T
                    blas.gemm(false, true, T, T, d, 1f, op + qOff * cb, compute, qw, qs, vp + kOff * cb, compute, kw,
                            d, 0f, dpPtr, DType.F32, T, tt, items);                                // dP = dO V^T
                    kernels.softmaxBackward(sPtr, dpPtr, lse.pointer(), pPtr, flag(), dsPtr, flag(), T, items, scale,
                            b, H, kv0, rep, j);                                                    // P, dS
                    blas.gemm(true, false, T, d, T, 1f, pPtr, compute, T, tt, op + qOff * cb, compute, qw, qs,
                            1f, dv.at(kOff), type(dv), kw, d, items);                              // dV += P^T dO
                    blas.gemm(false, false, T, d, T, 1f, dsPtr, compute, T, tt, kp + kOff * cb, compute, kw, d,
                            1f, dq.at(qOff), type(dq), qw, qs, items);                             // dQ += dS K
                    blas.gemm(true, false, T, d, T, 1f, dsPtr, compute, T, tt, qp + qOff * cb, compute, qw, qs,
                            1f, dk.at(kOff), type(dk), kw, d, items);                              // dK += dS^T Q
                }
            }
        }
    }

    private int flag() { return compute == DType.BF16 ? 1 : 0; }

    private static DType type(CudaTensor t) { return t.bf16 ? DType.BF16 : DType.F32; }

    @Override
    public void close() {
        for (DeviceScratch d : new DeviceScratch[] {scores, probs, dProbs, dScores, convQ, convK, convV, convDOut}) {
            d.close();
        }
    }
}
