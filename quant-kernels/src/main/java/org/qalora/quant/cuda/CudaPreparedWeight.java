package org.qalora.quant.cuda;

import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.PreparedWeight;

/**
 * A quantized weight resident on the GPU in the checkpoint's own GPTQ layout (see qalora_kernels.cu):
 * {@code q [I*bits/32, O]}, {@code scales [I/groupSize, O]}, {@code zeros [I/groupSize, O]}. The buffers are freed
 * by {@link #close()} or when no weight refers to them any more; {@link CudaQuantKernels#withZeros} shares codes and
 * scales with the original.
 */
public final class CudaPreparedWeight implements PreparedWeight, QuantKernelModule.DeviceWeight, AutoCloseable {
    private final QuantizedMatrix source;
    private final DeviceBuffer q;
    private final DeviceBuffer scales;
    private final DeviceBuffer zeros;

    CudaPreparedWeight(QuantizedMatrix source, DeviceBuffer q, DeviceBuffer scales, DeviceBuffer zeros) {
        this.source = source;
        this.q = q;
        this.scales = scales;
        this.zeros = zeros;
    }

    @Override public QuantizedMatrix source() { return source; }
    @Override public long q() { return q.pointer(); }
    @Override public long scales() { return scales.pointer(); }
    @Override public long zeros() { return zeros.pointer(); }
    @Override public int out() { return source.outFeatures(); }
    @Override public int in() { return source.inFeatures(); }
    @Override public int bits() { return source.bits(); }
    @Override public int groupSize() { return source.groupSize(); }

    DeviceBuffer codesBuffer() { return q; }
    DeviceBuffer scalesBuffer() { return scales; }

    /** Device bytes of codes, scales and zeros: what a GEMV must read. */
    public long deviceBytes() {
        return q.bytes() + scales.bytes() + zeros.bytes();
    }

    /**
     * Frees this weight's zeros now, and its codes and scales too. Only call it when no weight made by
     * {@code withZeros} from this one (or that this one came from) is still in use: they share those buffers.
     */
    @Override
    public void close() {
        zeros.close();
        scales.close();
        q.close();
    }

    @Override
    public String toString() {
        return "CudaPreparedWeight[" + source + "]";
    }
}
