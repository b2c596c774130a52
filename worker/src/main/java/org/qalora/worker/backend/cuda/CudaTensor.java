package org.qalora.worker.backend.cuda;

import java.lang.foreign.MemorySegment;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.DeviceBuffer;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;

/**
 * A tensor of the {@link CudaBackend}: device memory, row-major, float32 or (activations under mixed precision)
 * bf16. The memory is freed when the tensor becomes unreachable ({@link DeviceBuffer}'s cleaner) or when the backend
 * closes.
 */
final class CudaTensor extends Tensor {
    private final CudaBackend owner;
    final DeviceBuffer buffer;
    final boolean bf16;

    CudaTensor(CudaBackend owner, DeviceBuffer buffer, boolean bf16, int... shape) {
        super(shape);
        this.owner = owner;
        this.buffer = buffer;
        this.bf16 = bf16;
    }

    @Override
    public Backend backend() { return owner; }

    long pointer() { return buffer.pointer(); }

    /** 1 for bf16, 0 for fp32: the type flag the kernels take next to each pointer. */
    int flag() { return bf16 ? 1 : 0; }

    int elementBytes() { return bf16 ? 2 : 4; }

    /** Writes {@code host} (converted to bf16 when this tensor is). */
    void fromHost(CudaDriver cuda, float[] host) {
        if (host.length != size()) {
            throw new IllegalArgumentException("writing " + host.length + " values into " + this);
        }
        if (bf16) {
            cuda.copyToDevice(MemorySegment.ofArray(Bf16.fromFloats(host)), pointer());
        } else {
            cuda.copyToDevice(host, 0, host.length, pointer());
        }
    }

    /** The values as floats (synchronous). */
    float[] toHost(CudaDriver cuda) {
        if (bf16) {
            short[] raw = new short[size()];
            cuda.copyToHost(pointer(), MemorySegment.ofArray(raw));
            return Bf16.toFloats(raw);
        }
        float[] out = new float[size()];
        cuda.copyToHost(pointer(), out, 0, out.length);
        return out;
    }

    /** This tensor, after checking that it is fp32 (tables, masks, states and norms' weights must be). */
    CudaTensor fp32(String what) {
        if (bf16) {
            throw new IllegalArgumentException(what + " must be fp32, got " + this);
        }
        return this;
    }

    /** The device address of element {@code index}. */
    long at(long index) { return buffer.pointer() + index * elementBytes(); }

    @Override
    public String toString() {
        return super.toString() + (bf16 ? "[bf16]" : "");
    }
}
