package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.DeviceBuffer;

/**
 * One reusable device work buffer that grows to the largest request and is never shrunk. Everything runs on one
 * stream in issue order, so a buffer may be reused by the next operation as soon as the previous one was enqueued.
 */
final class DeviceScratch implements AutoCloseable {
    /** Counts reallocations of any scratch buffer: a CUDA graph recorded before a change holds stale addresses. */
    private static final java.util.concurrent.atomic.AtomicLong GENERATION = new java.util.concurrent.atomic.AtomicLong();

    private final CudaDriver cuda;
    private DeviceBuffer buffer;

    DeviceScratch(CudaDriver cuda) {
        this.cuda = cuda;
    }

    /** A pointer to at least {@code bytes} bytes (contents undefined). */
    long get(long bytes) {
        if (buffer == null || buffer.bytes() < bytes) {
            close();
            buffer = DeviceBuffer.allocate(cuda, Math.max(bytes, 256));
            GENERATION.incrementAndGet();
        }
        return buffer.pointer();
    }

    /** The reallocation count (see {@link CudaStepGraph}). */
    static long generation() { return GENERATION.get(); }

    @Override
    public void close() {
        if (buffer != null) {
            buffer.close();
            buffer = null;
            GENERATION.incrementAndGet();
        }
    }
}
