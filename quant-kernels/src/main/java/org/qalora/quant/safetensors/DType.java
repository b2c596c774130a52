package org.qalora.quant.safetensors;

/**
 * The safetensors element types we read and write, with their on-disk names and sizes.
 *
 * <p>{@link #alignmentRank} orders dtypes the way the reference writer (the Rust {@code safetensors} crate) lays
 * tensors out: larger-alignment dtypes first, then by name, so every tensor's data starts at an offset aligned to
 * its element size when the header is 8-byte padded.
 */
public enum DType {
    I64(8, 6), F32(4, 5), I32(4, 4), BF16(2, 3), F16(2, 2), I8(1, 1), U8(1, 0);

    private final int size;
    private final int alignmentRank;

    DType(int size, int alignmentRank) {
        this.size = size;
        this.alignmentRank = alignmentRank;
    }

    /** Bytes per element. */
    public int size() { return size; }

    /** Higher sorts earlier in files we write (see class comment). */
    int alignmentRank() { return alignmentRank; }

    /** True for dtypes {@code floats()} widens to float. */
    public boolean isFloatingPoint() { return this == F32 || this == F16 || this == BF16; }

    /**
     * Parses the header name; the error lists what is supported, because "F64" or "F8_E4M3" checkpoints exist and
     * the fix is to convert them.
     */
    public static DType parse(String name) {
        for (DType t : values()) {
            if (t.name().equals(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unsupported dtype \"" + name
                + "\" (supported: F32, F16, BF16, I32, I64, I8, U8); convert the tensor to one of those");
    }
}
