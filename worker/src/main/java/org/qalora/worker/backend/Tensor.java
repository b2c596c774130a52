package org.qalora.worker.backend;

import java.util.Arrays;

/**
 * A float32 tensor handle: a shape plus storage owned by the {@link Backend} that allocated it (a Java array on
 * the CPU backend, device memory on a GPU backend). Model code only passes handles to backend operations and never
 * touches the storage, so a device backend can keep weights and activations resident from layer to layer.
 */
public abstract class Tensor {
    private final int[] shape;
    private final int size;

    protected Tensor(int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d <= 0) {
                throw new IllegalArgumentException("tensor dimensions must be positive, got " + Arrays.toString(shape));
            }
            n *= d;
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor " + Arrays.toString(shape) + " exceeds 2^31 elements");
        }
        this.shape = shape.clone();
        this.size = (int) n;
    }

    /** The backend that owns the storage; operations refuse tensors of other backends. */
    public abstract Backend backend();

    public final int[] shape() { return shape.clone(); }

    public final int rank() { return shape.length; }

    public final int dim(int i) { return shape[i]; }

    /** Number of elements. */
    public final int size() { return size; }

    /** Rows of the tensor viewed as a matrix {@code [size / lastDim, lastDim]}. */
    public final int rows() { return size / shape[shape.length - 1]; }

    /** Last dimension. */
    public final int cols() { return shape[shape.length - 1]; }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + "@" + backend().name();
    }
}
