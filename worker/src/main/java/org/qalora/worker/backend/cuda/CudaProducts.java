package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.Cublas;
import org.qalora.quant.cuda.Cublas.DType;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.worker.backend.LinearWeight;

/**
 * The matrix products of {@link CudaBackend}: the linear layers (the weight dequantized per product into one scratch
 * matrix of the compute type, then cuBLAS) and the row-major products of activations and adapters. Under mixed
 * precision any bf16 operand makes both inputs bf16 (fp32 ones are converted into scratch), accumulating in fp32
 * into the output's own type; all-fp32 products run in fp32 (TF32 off).
 */
final class CudaProducts implements AutoCloseable {
    private final Cublas blas;
    private final QuantKernelModule quant;
    private final DType compute;
    private final Operands operands;
    private final DeviceScratch weightScratch, convA, convB, rowOut;

    CudaProducts(CudaDriver cuda, Cublas blas, QuantKernelModule quant, DType compute, Operands operands) {
        this.blas = blas;
        this.quant = quant;
        this.compute = compute;
        this.operands = operands;
        weightScratch = new DeviceScratch(cuda);
        convA = new DeviceScratch(cuda);
        convB = new DeviceScratch(cuda);
        rowOut = new DeviceScratch(cuda);
    }

    /** The weight {@code [O, I]} as a GEMM operand of the compute type (dequantized into the scratch if needed). */
    private long weightOperand(LinearWeight w) {
        return switch (w) {
            case CudaLinearWeight.Quantized q -> dequantized(q);
            case CudaLinearWeight.Folded f -> dequantized(f);
            case CudaLinearWeight.Dense d -> compute == DType.BF16 ? d.bf16().pointer() : d.weight().pointer();
            default -> throw new IllegalArgumentException(w + " is not a weight of a CUDA backend");
        };
    }

    private long dequantized(QuantKernelModule.DeviceWeight q) {
        long p = weightScratch.get((long) compute.bytes() * q.out() * q.in());
        if (compute == DType.BF16) {
            quant.dequantizeBf16(q, p);
        } else {
            quant.dequantize(q, p, false);
        }
        return p;
    }

    /** {@code y[N, O] = x W^T}. */
    void linear(CudaTensor x, LinearWeight w, CudaTensor y) {
        int n = x.rows(), in = w.inFeatures(), out = w.outFeatures();
        CudaBackend.requireSize(x.cols(), in, "linear input width");
        CudaBackend.requireSize(y.size(), (long) n * out, "linear output");
        if (n == 1 && w instanceof QuantKernelModule.DeviceWeight q && in % 32 == 0) {
            // One row (a decode step): the fused low-bit GEMV reads the packed codes once, where dequantizing would
            // write and read the whole weight in the compute type first. bf16 in and out when both are bf16 (mixed
            // precision), else fp32 in and out, converted at the edges.
            if (x.bf16 && y.bf16) {
                quant.gemvBf16(q, x.pointer(), y.pointer());
                return;
            }
            long xf = operands.as(x, DType.F32, convA);
            if (y.bf16) {
                long yf = rowOut.get(4L * out);
                quant.gemv(q, xf, yf);
                operands.storeInto(yf, y, out);
            } else {
                quant.gemv(q, xf, y.pointer());
            }
            return;
        }
        long xp = operands.as(x, compute, convA);
        blas.gemm(false, true, n, out, in, 1f, xp, compute, in, 0, weightOperand(w), compute, in, 0, 0f,
                y.pointer(), Operands.type(y), out, 0, 1);                               // y = x W^T
    }

    /** {@code dx[N, I] (+)= dy[N, O] W}. */
    void linearBackwardInput(CudaTensor dy, LinearWeight w, CudaTensor dx, boolean accumulate) {
        int n = dy.rows(), in = w.inFeatures(), out = w.outFeatures();
        CudaBackend.requireSize(dy.cols(), out, "linear backward gradient width");
        CudaBackend.requireSize(dx.size(), (long) n * in, "linear backward input gradient");
        long dyp = operands.as(dy, compute, convA);
        blas.gemm(false, false, n, in, out, 1f, dyp, compute, out, 0, weightOperand(w), compute, in, 0,
                accumulate ? 1f : 0f, dx.pointer(), Operands.type(dx), in, 0, 1);       // dx (+)= dy W
    }

    /** {@code c[M, N] (+)= alpha a[M, K] b[N, K]^T}. */
    void nt(CudaTensor a, CudaTensor b, CudaTensor c, float alpha, boolean accumulate) {
        int m = a.rows(), k = a.cols(), n = b.rows();
        CudaBackend.requireSize(b.cols(), k, "matmulNT inner");
        CudaBackend.requireSize(c.size(), (long) m * n, "matmulNT output");
        product(false, true, m, n, k, a, k, b, k, c, alpha, accumulate);
    }

    /** {@code c[M, N] (+)= alpha a[M, K] b[K, N]}. */
    void nn(CudaTensor a, CudaTensor b, CudaTensor c, float alpha, boolean accumulate) {
        int m = a.rows(), k = a.cols(), n = b.cols();
        CudaBackend.requireSize(b.rows(), k, "matmulNN inner");
        CudaBackend.requireSize(c.size(), (long) m * n, "matmulNN output");
        product(false, false, m, n, k, a, k, b, n, c, alpha, accumulate);
    }

    /** {@code c[M, N] (+)= a[K, M]^T b[K, N]}. */
    void tn(CudaTensor a, CudaTensor b, CudaTensor c, boolean accumulate) {
        int k = a.rows(), m = a.cols(), n = b.cols();
        CudaBackend.requireSize(b.rows(), k, "matmulTN inner");
        CudaBackend.requireSize(c.size(), (long) m * n, "matmulTN output");
        product(true, false, m, n, k, a, m, b, n, c, 1f, accumulate);
    }

    /** Row-major {@code c[M, N] (+)= alpha op(a) op(b)}. */
    private void product(boolean transA, boolean transB, int m, int n, int k, CudaTensor a, int lda, CudaTensor b,
                         int ldb, CudaTensor c, float alpha, boolean accumulate) {
        boolean mixed = a.bf16 || b.bf16 || c.bf16;
        DType in = mixed ? DType.BF16 : DType.F32;
        long pa = operands.as(a, in, convA), pb = operands.as(b, in, convB);
        blas.gemm(transA, transB, m, n, k, alpha, pa, in, lda, 0, pb, in, ldb, 0, accumulate ? 1f : 0f, c.pointer(),
                Operands.type(c), c.cols(), 0, 1);
    }

    @Override
    public void close() {
        weightScratch.close();
        convA.close();
        convB.close();
        rowOut.close();
    }
}
