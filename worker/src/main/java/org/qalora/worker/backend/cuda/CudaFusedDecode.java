package org.qalora.worker.backend.cuda;

import java.util.List;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.quant.cuda.QuantKernelModule.DeviceWeight;
import org.qalora.worker.backend.KvCacheShape;
import org.qalora.worker.backend.LinearWeight;

/**
 * The fused products of a bf16 decode step ({@link QuantKernelModule}'s three-weight, residual and SwiGLU GEMVs):
 * each method runs its fused kernel and returns true when the call is one the kernel computes exactly as the separate
 * calls would (one bf16 row, quantized weights of one input width, bit width and group size, bf16 products), else
 * returns false and the backend runs the separate calls. Measured in docs/PERFORMANCE.md, "Batch-1 decode on the GPU".
 */
final class CudaFusedDecode {
    /**
     * Whether the q/k/v launch also does RoPE and the cache write, and the residual launches the next RMSNorm: on by
     * default ({@code -Dqalora.cuda.decodeEpilogues=false} runs the separate kernels; docs/CUDA.md, "Decode
     * epilogues", says what an H100 measured).
     */
    static final boolean EPILOGUES = Boolean.parseBoolean(System.getProperty("qalora.cuda.decodeEpilogues", "true"));
    private final QuantKernelModule quant;
    private final boolean epilogues;

    /** @param epilogues whether to fold RoPE, the cache write and the next RMSNorm ({@link #EPILOGUES} by default) */
    CudaFusedDecode(QuantKernelModule quant, boolean epilogues) {
        this.quant = quant;
        this.epilogues = epilogues;
    }

    /** {@code y[k] = x W[k]^T}, up to three weights. */
    boolean linears(CudaTensor x, List<LinearWeight> w, List<CudaTensor> y) {
        if (w.isEmpty() || w.size() > 3 || !oneBf16Row(x)) {
            return false;
        }
        DeviceWeight[] d = new DeviceWeight[w.size()];
        long[] out = new long[w.size()];
        for (int k = 0; k < d.length; k++) {
            d[k] = quantized(w.get(k), x, y.get(k));
            if (d[k] == null || !QuantKernelModule.fusable(d[0], d[k])) {
                return false;
            }
            out[k] = y.get(k).pointer();
        }
        quant.gemvBf16(d, x.pointer(), out);
        return true;
    }

    /**
     * {@code out = residual + x W^T}, the product rounded as {@code product} would hold it; residual and out may be
     * fp32 (the residual stream is) or bf16.
     */
    boolean linearPlusResidual(CudaTensor x, LinearWeight w, CudaTensor residual, CudaTensor product, CudaTensor out) {
        DeviceWeight d = oneBf16Row(x) ? quantized(w, x, product) : null;
        if (d == null || residual.size() != d.out() || out.size() != d.out()) {
            return false;
        }
        quant.gemvResidualBf16(d, x.pointer(), product.bf16, residual.pointer(), residual.bf16, out.pointer(),
                out.bf16);
        return true;
    }

    /** {@link #linearPlusResidual}, then the RMSNorm of {@code out} into {@code normed} and {@code rstd[0]}. */
    boolean linearPlusResidualNorm(CudaTensor x, LinearWeight w, CudaTensor residual, CudaTensor product,
                                   CudaTensor out, CudaTensor norm, float eps, CudaTensor normed, CudaTensor rstd) {
        DeviceWeight d = epilogues && oneBf16Row(x) ? quantized(w, x, product) : null;
        if (d == null || residual.size() != d.out() || out.size() != d.out() || norm.bf16 || norm.size() != d.out()
                || normed.size() != d.out() || rstd.bf16 || rstd.size() != 1) {
            return false;
        }
        return quant.gemvResidualNormBf16(d, x.pointer(), product.bf16, residual.pointer(), residual.bf16,
                out.pointer(), out.bf16, norm.pointer(), eps, normed.pointer(), normed.bf16, rstd.pointer());
    }

    /**
     * {@link #linears} of one row's q, k, v, then its rotary embedding and cache write ({@link CudaDecodeOps}'s
     * {@code ropeAndWriteCache}, whose checks the separate path keeps).
     */
    boolean linearsRopeAndWriteCache(CudaTensor x, List<LinearWeight> qkv, List<CudaTensor> y, CudaTensor cos,
                                     CudaTensor sin, int rows, int heads, int kvHeads, int headDim,
                                     CudaTensor kCache, CudaTensor vCache, KvCacheShape shape, CudaInts cacheRows) {
        if (!epilogues || rows != 1 || qkv.size() != 3 || !oneBf16Row(x) || cos.bf16 || sin.bf16 || kCache.bf16 != vCache.bf16
                || y.get(0).size() != (long) heads * headDim || y.get(1).size() != (long) kvHeads * headDim
                || shape.kvWidth() != kvHeads * headDim || shape.headDim() != headDim
                || cos.size() != headDim / 2 || sin.size() != headDim / 2 || cacheRows.size() != 2
                || kCache.size() != (long) shape.rows() * shape.kvWidth() || vCache.size() != kCache.size()) {
            return false;
        }
        DeviceWeight[] d = new DeviceWeight[3];
        long[] out = new long[3];
        for (int k = 0; k < 3; k++) {
            d[k] = quantized(qkv.get(k), x, y.get(k));
            if (d[k] == null) {
                return false;
            }
            out[k] = y.get(k).pointer();
        }
        return quant.gemvRopeCacheBf16(d, x.pointer(), out, cos.pointer(), sin.pointer(), kCache.pointer(),
                vCache.pointer(), kCache.bf16, cacheRows.pointer(), shape.capacity(), headDim);
    }

    /** {@code out = silu(x Wg^T) * (x Wu^T)}. */
    boolean swigluOfLinears(CudaTensor x, LinearWeight wGate, LinearWeight wUp, CudaTensor out) {
        if (!oneBf16Row(x)) {
            return false;
        }
        DeviceWeight g = quantized(wGate, x, out), u = quantized(wUp, x, out);
        if (g == null || u == null || !QuantKernelModule.fusable(g, u)) {
            return false;
        }
        quant.gemvSwigluBf16(g, u, x.pointer(), out.pointer());
        return true;
    }

    private static boolean oneBf16Row(CudaTensor x) {
        return x.bf16 && x.rows() == 1 && x.cols() % 32 == 0;
    }

    /** {@code w} as a device weight when it is a quantized weight reading {@code x} and writing all of bf16 {@code y}. */
    private static DeviceWeight quantized(LinearWeight w, CudaTensor x, CudaTensor y) {
        if (w instanceof DeviceWeight d && d.in() == x.cols() && y.bf16 && y.size() == d.out()) {
            return d;
        }
        return null;
    }
}
