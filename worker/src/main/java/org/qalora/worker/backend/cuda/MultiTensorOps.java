package org.qalora.worker.backend.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import org.qalora.quant.cuda.CudaDriver;

/**
 * The optimizer's fused operations over every adapter tensor at once: the global sum of squares (one launch pair,
 * one 8-byte copy to the host) and AdamW (one launch). Tensors are passed to the kernels as a device table of
 * pointers and sizes.
 */
final class MultiTensorOps implements AutoCloseable {
    private final CudaDriver cuda;
    private final TrainingKernels kernels;
    private final DeviceScratch sumTable, adamTable, partial, scalar;
    private long[] lastSumTable, lastAdamTable;

    MultiTensorOps(CudaDriver cuda, TrainingKernels kernels) {
        this.cuda = cuda;
        this.kernels = kernels;
        sumTable = new DeviceScratch(cuda);
        adamTable = new DeviceScratch(cuda);
        partial = new DeviceScratch(cuda);
        scalar = new DeviceScratch(cuda);
    }

    /** {@code sum over tensors of sum(t^2)} in double, in a fixed order (tensors in list order). */
    double sumOfSquares(List<CudaTensor> tensors) {
        long[] desc = new long[3 * tensors.size()];
        long largest = 0;
        for (int i = 0; i < tensors.size(); i++) {
            CudaTensor t = tensors.get(i);
            desc[3 * i] = t.pointer();
            desc[3 * i + 1] = t.size();
            desc[3 * i + 2] = t.flag();
            largest = Math.max(largest, t.size());
        }
        int bpt = TrainingKernels.blocksPerTensor(largest, tensors.size(), cuda.multiprocessors());
        long out = scalar.get(8);
        kernels.sumOfSquares(table(desc, true), tensors.size(), bpt, partial.get(8L * bpt * tensors.size()), out);
        double[] r = new double[1];
        cuda.copyToHost(out, MemorySegment.ofArray(r));
        return r[0];
    }

    /** One PyTorch AdamW step on every fp32 {@code params[i]} with {@code grads[i], m[i], v[i]} (same sizes). */
    void adamw(List<CudaTensor> params, List<CudaTensor> grads, List<CudaTensor> m, List<CudaTensor> v,
               float gradScale, double lr, double beta1, double beta2, double eps, double weightDecay, long step) {
        long[] desc = new long[5 * params.size()];
        long largest = 0;
        for (int i = 0; i < params.size(); i++) {
            desc[5 * i] = params.get(i).pointer();
            desc[5 * i + 1] = grads.get(i).pointer();
            desc[5 * i + 2] = m.get(i).pointer();
            desc[5 * i + 3] = v.get(i).pointer();
            desc[5 * i + 4] = params.get(i).size();
            largest = Math.max(largest, params.get(i).size());
        }
        // The same host-side constants as CpuBackend.adamw, so both backends compute the same bits.
        double bc1 = 1 - Math.pow(beta1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        double stepSize = lr / bc1, decay = 1 - lr * weightDecay;
        int bpt = TrainingKernels.blocksPerTensor(largest, params.size(), cuda.multiprocessors());
        kernels.adamw(table(desc, false), params.size(), bpt, gradScale, beta1, beta2, stepSize, decay, bc2Sqrt, eps);
    }

    /**
     * The descriptor table on the device. The trainer passes the same tensors every step, so an unchanged table is
     * not copied again (a copy from pageable host memory waits for the device).
     */
    private long table(long[] desc, boolean sum) {
        DeviceScratch slot = sum ? sumTable : adamTable;
        long p = slot.get(8L * desc.length);
        if (!Arrays.equals(sum ? lastSumTable : lastAdamTable, desc)) {
            cuda.copyToDevice(MemorySegment.ofArray(desc), p);
            if (sum) {
                lastSumTable = desc;
            } else {
                lastAdamTable = desc;
            }
        }
        return p;
    }

    @Override
    public void close() {
        for (DeviceScratch s : new DeviceScratch[] {sumTable, adamTable, partial, scalar}) {
            s.close();
        }
    }
}
