package org.qalora.quant.gguf;

import java.util.Arrays;

/**
 * A tensor's entry in a GGUF header.
 *
 * @param dims   ggml's {@code ne}, innermost first: a PyTorch {@code [out, in]} weight is {@code {in, out}}
 * @param offset byte offset of its data from the start of the data section (a multiple of the alignment); -1 while
 *               a writer has not placed it yet
 */
public record GgufTensorInfo(String name, long[] dims, GgmlType type, long offset) {
    public GgufTensorInfo {
        dims = dims.clone();
        if (dims.length == 0 || dims.length > 4) {
            throw new IllegalArgumentException(name + ": ggml tensors have 1 to 4 dimensions, got " + dims.length);
        }
        for (long d : dims) {
            if (d <= 0) {
                throw new IllegalArgumentException(name + ": dimensions must be positive, got " + Arrays.toString(dims));
            }
        }
    }

    @Override
    public long[] dims() { return dims.clone(); }

    public long elements() {
        long n = 1;
        for (long d : dims) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long byteSize() { return type.byteSize(dims); }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t && t.name.equals(name) && Arrays.equals(t.dims, dims) && t.type == type
                && t.offset == offset;
    }

    @Override
    public int hashCode() { return name.hashCode() * 31 + Arrays.hashCode(dims); }

    @Override
    public String toString() { return name + " " + type + " " + Arrays.toString(dims); }
}
