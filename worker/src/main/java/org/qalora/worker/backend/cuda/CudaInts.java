package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.DeviceBuffer;
import org.qalora.worker.backend.IntTensor;

/** {@link IntTensor} of the CUDA backend: {@code size} 32-bit integers at {@code offset} in a device buffer. */
record CudaInts(CudaBackend backend, DeviceBuffer buffer, int offset, int size) implements IntTensor {
    /** The device address of the first integer. */
    long pointer() { return buffer.pointer() + 4L * offset; }

    @Override
    public IntTensor slice(int from, int length) {
        if (from < 0 || length < 0 || from + length > size) {
            throw new IllegalArgumentException("slice [" + from + ", +" + length + ") of " + size + " ints");
        }
        return new CudaInts(backend, buffer, offset + from, length);
    }
}
