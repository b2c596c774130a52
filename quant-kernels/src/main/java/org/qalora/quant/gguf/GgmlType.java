package org.qalora.quant.gguf;

import org.qalora.quant.io.FormatException;

/**
 * The ggml tensor types our GGUF files use, with ggml's numeric ids ({@code enum ggml_type} in ggml.h, mirrored by
 * gguf-py's {@code GGMLQuantizationType}) and storage sizes. A row of {@code ne0} elements takes
 * {@code ne0 / blockSize} blocks of {@code blockBytes} bytes.
 *
 * <pre>
 *   F32   0   one little-endian float per element
 *   F16   1   one IEEE half per element
 *   Q4_1  3   blocks of 32: half d, half m, 16 bytes of nibbles; element j = d * q_j + m
 * </pre>
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_1(3, 32, 20);

    private final int id;
    private final int blockSize;
    private final int blockBytes;

    GgmlType(int id, int blockSize, int blockBytes) {
        this.id = id;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** ggml's numeric type id, as stored in a GGUF tensor info. */
    public int id() { return id; }

    /** Elements per block (1 for the float types). */
    public int blockSize() { return blockSize; }

    /** Bytes per block. */
    public int blockBytes() { return blockBytes; }

    /** Bytes of a tensor with these dims (innermost first); the innermost must be whole blocks. */
    public long byteSize(long[] dims) {
        if (dims.length == 0 || dims[0] % blockSize != 0) {
            throw new IllegalArgumentException(this + " needs the innermost dimension to be a multiple of " + blockSize
                    + ", got " + (dims.length == 0 ? "no dimensions" : dims[0]));
        }
        long elements = 1;
        for (long d : dims) {
            elements = Math.multiplyExact(elements, d);
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    /** The type with ggml id {@code id}; {@code where} names the file and tensor in the error. */
    public static GgmlType byId(int id, String where) throws FormatException {
        for (GgmlType t : values()) {
            if (t.id == id) {
                return t;
            }
        }
        throw new FormatException(where + ": ggml type " + id + " is not one this reader decodes (F32 = 0, F16 = 1,"
                + " Q4_1 = 3)");
    }
}
