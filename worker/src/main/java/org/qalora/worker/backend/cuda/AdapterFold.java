package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.Cublas;
import org.qalora.quant.cuda.Cublas.DType;
import org.qalora.quant.cuda.CudaDriver;

/**
 * Folds a QA-LoRA adapter into a quantized weight's zero points for one product: {@code Z' = Z - factor (B A)^T / S},
 * the merge's formula, so that {@code x W'^T} is the base product plus the adapter's in one GEMM (and {@code dy W'}
 * the base and adapter input gradients in one). The training pass then never reads or writes a projection's
 * output or input gradient a second time for the adapter: measured in docs/PERFORMANCE.md ("GPU training").
 *
 * <p>Under bf16 this is as exact as the separate adapter product: both round once to bf16, the dequantized weight
 * {@code round(W + delta)} here, the projection output {@code round(x W^T + u B^T)} there, each within half a bf16
 * ulp of its own magnitude. {@code B A} is an fp32 product (r x G per output row, tiny); the fold kernel reads and
 * writes {@code [G, O]} floats, 1/g of what dequantization reads.
 */
final class AdapterFold implements AutoCloseable {
    private final Cublas blas;
    private final TrainingKernels kernels;
    private final DeviceScratch product, zeros;

    AdapterFold(CudaDriver cuda, Cublas blas, TrainingKernels kernels) {
        this.blas = blas;
        this.kernels = kernels;
        this.product = new DeviceScratch(cuda);
        this.zeros = new DeviceScratch(cuda);
    }

    /**
     * @param a [r, G] fp32, b [O, r] fp32
     * @return the weight with folded zeros, valid until the next call (the zeros live in this fold's scratch)
     */
    CudaLinearWeight.Folded fold(CudaLinearWeight.Quantized w, CudaTensor a, CudaTensor b, float factor) {
        int out = w.out(), groups = w.in() / w.groupSize(), rank = a.rows();
        if (a.bf16 || b.bf16 || a.cols() != groups || b.rows() != out || b.cols() != rank) {
            throw new IllegalArgumentException("adapter A " + a + " and B " + b + " do not fit a " + out + " x "
                    + w.in() + " weight with group size " + w.groupSize() + " (fp32 A [r, " + groups + "], B ["
                    + out + ", r] expected)");
        }
        long ba = product.get(4L * out * groups), z = zeros.get(4L * out * groups);
        blas.gemm(false, false, out, groups, rank, 1f, b.pointer(), DType.F32, rank, 0, a.pointer(), DType.F32,
                groups, 0, 0f, ba, DType.F32, groups, 0, 1);                               // BA[O,G] = B A
        kernels.foldZeros(w.zeros(), w.scales(), ba, factor, z, groups, out);              // Z'[G,O]
        return new CudaLinearWeight.Folded(w, z);
    }

    @Override
    public void close() {
        product.close();
        zeros.close();
    }
}
