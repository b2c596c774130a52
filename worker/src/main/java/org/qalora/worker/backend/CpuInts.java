package org.qalora.worker.backend;

import java.util.Arrays;

/** {@link IntTensor} of the CPU backend: a window of a Java array. */
final class CpuInts implements IntTensor {
    final int[] data;
    final int offset;
    private final int size;

    CpuInts(int[] data, int offset, int size) {
        this.data = data;
        this.offset = offset;
        this.size = size;
    }

    @Override
    public int size() { return size; }

    @Override
    public IntTensor slice(int from, int length) {
        if (from < 0 || length < 0 || from + length > size) {
            throw new IllegalArgumentException("slice [" + from + ", +" + length + ") of " + size + " ints");
        }
        return new CpuInts(data, offset + from, length);
    }

    /** A copy of the values. */
    int[] values() { return Arrays.copyOfRange(data, offset, offset + size); }
}
