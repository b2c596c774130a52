package org.qalora.quant.safetensors;

import java.util.Arrays;

/** A tensor's name, element type and shape (row-major, as in the safetensors header). */
public record TensorInfo(String name, DType dtype, long[] shape) implements java.io.Serializable {
    public TensorInfo {
        shape = shape.clone();
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor " + name + " has a negative dimension in " + Arrays.toString(shape));
            }
        }
    }

    @Override
    public long[] shape() { return shape.clone(); }

    public int rank() { return shape.length; }

    /** Dimension {@code i} as an int (every dimension we handle fits; a larger one is an error here). */
    public int dim(int i) {
        if (shape[i] > Integer.MAX_VALUE) {
            throw new IllegalStateException("tensor " + name + " dimension " + i + " is " + shape[i] + ", too large for one array");
        }
        return (int) shape[i];
    }

    /** Number of elements; exact (throws on long overflow). */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long byteSize() { return Math.multiplyExact(numel(), dtype.size()); }

    /** True when the shape is exactly {@code expected}. */
    public boolean hasShape(long... expected) { return Arrays.equals(shape, expected); }

    public String shapeString() { return Arrays.toString(shape); }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && t.name.equals(name) && t.dtype == dtype && Arrays.equals(t.shape, shape);
    }

    @Override
    public int hashCode() { return name.hashCode() * 31 + dtype.hashCode() * 7 + Arrays.hashCode(shape); }

    @Override
    public String toString() { return name + " " + dtype + " " + shapeString(); }
}
