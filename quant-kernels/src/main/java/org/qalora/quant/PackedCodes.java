package org.qalora.quant;

/**
 * GPTQ bit packing of unsigned integer codes into int32 words, along one dimension.
 *
 * <p>2, 4 and 8 bits: {@code 32 / bits} values per word, value {@code j} of a word at bits
 * {@code [bits*j, bits*j + bits)}, least significant first. 3 bits: every 32 consecutive values fill three words
 * in the 10-1-10-1-10 layout of AutoGPTQ: v0..v9 in word 0 (v10's low two bits at its top), v10's high bit and
 * v11..v20 in word 1 (v21's low bit at its top), v21's high two bits and v22..v31 in word 2.
 *
 * <p>Packing runs along the "packed" dimension of a row-major {@code [n, m]} matrix: qweight packs the input
 * dimension (rows), qzeros packs the output dimension (columns). Callers pick the layout through
 * {@link #unpackRows} / {@link #unpackColumns} and their inverses.
 */
public final class PackedCodes {
    private PackedCodes() {}

    /** Checks that {@code bits} is one GPTQ supports. */
    public static void checkBits(int bits) {
        if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
            throw new IllegalArgumentException("unsupported bit width " + bits + ": use 2, 3, 4 or 8");
        }
    }

    /** Number of int32 words that hold {@code count} codes of {@code bits} bits (count is a multiple of 32). */
    public static int wordsFor(int count, int bits) {
        checkBits(bits);
        if (count % 32 != 0) {
            throw new IllegalArgumentException("GPTQ packing needs a multiple of 32 values, got " + count);
        }
        return count / 32 * bits;
    }

    /**
     * Reads code {@code index} of a packed sequence, where consecutive codes of the sequence sit in words
     * {@code words[base + k * stride]} for k = 0, 1, ... (stride lets a column of a row-major matrix be read).
     */
    public static int get(int[] words, int base, int stride, int index, int bits) {
        if (bits == 3) {
            int block = index >>> 5;
            int j = index & 31;
            int w = base + block * 3 * stride;
            if (j < 10) {
                return (words[w] >>> (3 * j)) & 7;
            } else if (j == 10) {
                return ((words[w] >>> 30) & 3) | ((words[w + stride] & 1) << 2);
            } else if (j < 21) {
                return (words[w + stride] >>> (3 * (j - 11) + 1)) & 7;
            } else if (j == 21) {
                return ((words[w + stride] >>> 31) & 1) | ((words[w + 2 * stride] & 3) << 1);
            } else {
                return (words[w + 2 * stride] >>> (3 * (j - 22) + 2)) & 7;
            }
        }
        int perWord = 32 / bits;
        int word = words[base + (index / perWord) * stride];
        return (word >>> (bits * (index % perWord))) & ((1 << bits) - 1);
    }

    /** Writes code {@code value} (already in range) at {@code index}; inverse of {@link #get}. */
    public static void set(int[] words, int base, int stride, int index, int bits, int value) {
        int mask = (1 << bits) - 1;
        if ((value & ~mask) != 0) {
            throw new IllegalArgumentException("code " + value + " does not fit in " + bits + " bits");
        }
        if (bits == 3) {
            int block = index >>> 5;
            int j = index & 31;
            int w = base + block * 3 * stride;
            if (j < 10) {
                words[w] = (words[w] & ~(7 << (3 * j))) | (value << (3 * j));
            } else if (j == 10) {
                words[w] = (words[w] & ~(3 << 30)) | ((value & 3) << 30);
                words[w + stride] = (words[w + stride] & ~1) | (value >>> 2);
            } else if (j < 21) {
                int shift = 3 * (j - 11) + 1;
                words[w + stride] = (words[w + stride] & ~(7 << shift)) | (value << shift);
            } else if (j == 21) {
                words[w + stride] = (words[w + stride] & ~(1 << 31)) | ((value & 1) << 31);
                words[w + 2 * stride] = (words[w + 2 * stride] & ~3) | (value >>> 1);
            } else {
                int shift = 3 * (j - 22) + 2;
                words[w + 2 * stride] = (words[w + 2 * stride] & ~(7 << shift)) | (value << shift);
            }
            return;
        }
        int perWord = 32 / bits;
        int at = base + (index / perWord) * stride;
        int shift = bits * (index % perWord);
        words[at] = (words[at] & ~(mask << shift)) | (value << shift);
    }

    /** Packs a row-major {@code [rows, cols]} code matrix along its rows: result {@code [rows*bits/32, cols]}. */
    public static int[] packRows(int[] codes, int rows, int cols, int bits) {
        int[] words = new int[wordsFor(rows, bits) * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                set(words, c, cols, r, bits, codes[r * cols + c]);
            }
        }
        return words;
    }

    /** Inverse of {@link #packRows}. */
    public static int[] unpackRows(int[] words, int rows, int cols, int bits) {
        int[] codes = new int[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                codes[r * cols + c] = get(words, c, cols, r, bits);
            }
        }
        return codes;
    }

    /** Packs a row-major {@code [rows, cols]} code matrix along its columns: result {@code [rows, cols*bits/32]}. */
    public static int[] packColumns(int[] codes, int rows, int cols, int bits) {
        int wordsPerRow = wordsFor(cols, bits);
        int[] words = new int[rows * wordsPerRow];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                set(words, r * wordsPerRow, 1, c, bits, codes[r * cols + c]);
            }
        }
        return words;
    }

    /** Inverse of {@link #packColumns}. */
    public static int[] unpackColumns(int[] words, int rows, int cols, int bits) {
        int wordsPerRow = wordsFor(cols, bits);
        int[] codes = new int[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                codes[r * cols + c] = get(words, r * wordsPerRow, 1, c, bits);
            }
        }
        return codes;
    }
}
