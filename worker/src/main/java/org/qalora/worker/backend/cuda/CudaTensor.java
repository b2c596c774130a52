package org.qalora.worker.backend.cuda;

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
