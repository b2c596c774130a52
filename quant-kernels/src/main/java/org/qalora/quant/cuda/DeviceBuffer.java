package org.qalora.quant.cuda;

import java.lang.ref.Cleaner;

/**
 * One device allocation. Freed by {@link #close()} or, failing that, when the buffer becomes unreachable (a
 * {@link Cleaner}), so device-resident weights that several {@link CudaPreparedWeight}s share (codes and scales
 * survive a {@code withZeros}) are freed exactly once, after their last user.
 */
public final class DeviceBuffer implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    private final long pointer;
    private final long bytes;
    private final Cleaner.Cleanable cleanable;

    private DeviceBuffer(CudaDriver cuda, long bytes) {
        this.bytes = bytes;
        this.pointer = cuda.malloc(bytes);
        long p = pointer;
        this.cleanable = CLEANER.register(this, () -> cuda.free(p, bytes));
    }

    /** An uninitialised buffer of {@code bytes} bytes. */
    public static DeviceBuffer allocate(CudaDriver cuda, long bytes) {
        return new DeviceBuffer(cuda, bytes);
    }

    /**
     * {@link #allocate}, retried after a garbage collection when the device is full (up to twice): buffers that are
     * no longer reachable are freed by their cleaners only once the collector has found them.
     */
    public static DeviceBuffer allocateCollecting(CudaDriver cuda, long bytes) {
        for (int attempt = 0; ; attempt++) {
            try {
                return allocate(cuda, bytes);
            } catch (CudaException e) {
                if (e.status() != 2 || attempt == 2) { // CUDA_ERROR_OUT_OF_MEMORY
                    throw e;
                }
                System.gc();
                try {
                    Thread.sleep(200);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
    }

    public static DeviceBuffer of(CudaDriver cuda, float[] host) {
        DeviceBuffer b = allocate(cuda, (long) host.length * 4);
        cuda.copyToDevice(host, 0, host.length, b.pointer);
        return b;
    }

    public static DeviceBuffer of(CudaDriver cuda, int[] host) {
        DeviceBuffer b = allocate(cuda, (long) host.length * 4);
        cuda.copyToDevice(host, b.pointer);
        return b;
    }

    /** The device address (CUdeviceptr). Valid while this buffer is open and reachable. */
    public long pointer() { return pointer; }

    public long bytes() { return bytes; }

    /** Frees the memory now; idempotent. */
    @Override
    public void close() {
        cleanable.clean();
    }
}
