package org.qalora.quant.cuda;

import java.util.function.Supplier;

/**
 * A process-wide native resource (the driver, cuBLAS, the kernel module) created on first use. A failed creation
 * is remembered with its reason, so on a CPU-only machine every later {@link #available()} answers at once with
 * the same reason instead of probing the libraries again.
 *
 * @param <T> the resource; {@code factory} throws {@link CudaException} with a reason a user can act on
 */
final class LazyNative<T> {
    private final Supplier<T> factory;
    private volatile T instance;
    private volatile String unavailable;

    LazyNative(Supplier<T> factory) {
        this.factory = factory;
    }

    /** The resource, created on first use; throws (with the remembered reason) when it cannot be had. */
    T get() {
        T value = instance;
        if (value != null) {
            return value;
        }
        synchronized (this) {
            if (instance != null) {
                return instance;
            }
            if (unavailable != null) {
                throw new CudaException(unavailable);
            }
            try {
                instance = factory.get();
                return instance;
            } catch (CudaException e) {
                unavailable = e.getMessage();
                throw e;
            }
        }
    }

    /** True when the resource exists or can be created; never throws. */
    boolean available() {
        try {
            get();
            return true;
        } catch (CudaException e) {
            return false;
        }
    }

    /** Why {@link #available()} is false, or null when it is true. */
    String unavailableReason() {
        return available() ? null : unavailable;
    }
}
