package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.Cublas.DType;

/**
 * Tensors as GEMM operands of a wanted element type: cuBLAS needs both inputs of one type, so an fp32 tensor that
 * meets a bf16 one (mixed precision) is converted into a scratch buffer first; a tensor already of that type is
 * used in place.
 */
final class Operands {
    private final TrainingKernels kernels;

    Operands(TrainingKernels kernels) {
        this.kernels = kernels;
    }

    /** A device pointer to {@code t}'s elements as {@code want}: {@code t} itself, or a copy in {@code slot}. */
    long as(CudaTensor t, DType want, DeviceScratch slot) {
        if (type(t) == want) {
            return t.pointer();
        }
        long p = slot.get((long) t.size() * want.bytes());
        kernels.convert(t.pointer(), t.flag(), p, want == DType.BF16 ? 1 : 0, t.size());
        return p;
    }

    /** Writes {@code n} fp32 values at {@code src} into {@code dst} in its own element type. */
    void storeInto(long src, CudaTensor dst, long n) {
        kernels.convert(src, 0, dst.pointer(), dst.flag(), n);
    }

    static DType type(CudaTensor t) {
        return t.bf16 ? DType.BF16 : DType.F32;
    }
}
