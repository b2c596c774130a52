package org.qalora.worker.backend.cuda;

import java.util.List;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.quant.cuda.QuantKernelModule.DeviceWeight;
import org.qalora.worker.backend.LinearWeight;

/**
 * The fused products of a bf16 decode step ({@link QuantKernelModule}'s three-weight, residual and SwiGLU GEMVs):
 * each method runs its fused kernel and returns true when the call is one the kernel computes exactly as the separate
 * calls would (one bf16 row, quantized weights of one input width, bit width and group size, bf16 products), else
 * returns false and the backend runs the separate calls. Measured in docs/PERFORMANCE.md, "Batch-1 decode on the GPU".
 */
final class CudaFusedDecode {
    private final QuantKernelModule quant;

    CudaFusedDecode(QuantKernelModule quant) {
        this.quant = quant;
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
