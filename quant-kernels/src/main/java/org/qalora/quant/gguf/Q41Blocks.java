package org.qalora.quant.gguf;

import java.io.IOException;
import java.io.OutputStream;
import org.qalora.quant.QuantizedMatrix;

/**
 * ggml's Q4_1 blocks and the exact conversion of a group-quantized matrix into them.
 *
 * <pre>
 *   block_q4_1 (20 bytes, 32 weights):  half d | half m | u8 qs[16]
 *   weight j     = d * (qs[j] &amp; 0x0F) + m        j in 0..15
 *   weight j+16  = d * (qs[j] &gt;&gt; 4)   + m
 * </pre>
 *
 * Our weights are {@code S * (q - Z)} per group with real-valued (merged) zero points Z. That is {@code d * q + m}
 * with d = S and m = -S Z, so a block stores our group exactly except for the half rounding of m (S is a half
 * already in GPTQ checkpoints; if it is not, its rounding is counted too). 2- and 3-bit codes are 4-bit codes that
 * never use the top values; a group of 64 or 128 is 2 or 4 consecutive blocks with the same d and m.
 */
public final class Q41Blocks {
    public static final int BLOCK = 32;
    public static final int BLOCK_BYTES = 20;

    private Q41Blocks() {}

    /** Whether {@code q} converts to Q4_1: codes of at most 4 bits, groups made of whole 32-weight blocks. */
    public static boolean fits(QuantizedMatrix q) {
        return q.bits() <= 4 && q.groupSize() % BLOCK == 0;
    }

    /**
     * The error bound of one weight: the half rounding of m = -S Z, plus that of d = S times the code when S is not
     * a half itself ({@link Half#bound}).
     */
    public static double bound(double s, double z, short d, int code) {
        double dBound = Half.value(d) == s ? 0 : Half.bound(s) * code;
        return Half.bound(-s * z) + dBound;
    }

    /**
     * Writes {@code q} as Q4_1 rows: output row r is {@code q}'s row {@code rowOrder[r]} (null: the same order), each
     * row {@code in / 32} blocks. Returns the rounding it made.
     *
     * @throws IllegalArgumentException when {@code q} does not fit, or a scale or S Z is beyond the half range
     */
    public static Rounding encode(QuantizedMatrix q, int[] rowOrder, OutputStream out) throws IOException {
        if (!fits(q)) {
            throw new IllegalArgumentException(q + " does not fit Q4_1 (needs bits <= 4 and a group size that is a"
                    + " multiple of 32)");
        }
        int rows = q.outFeatures(), cols = q.inFeatures(), blocks = cols / BLOCK;
        checkOrder(rowOrder, rows);
        int[] codes = q.codes();                                     // [out, in]
        byte[] row = new byte[blocks * BLOCK_BYTES];
        double maxError = 0, maxRatio = 0, maxM = 0;
        for (int r = 0; r < rows; r++) {
            int o = rowOrder == null ? r : rowOrder[r];
            for (int b = 0; b < blocks; b++) {
                int k = b * BLOCK / q.groupSize();
                double s = q.scale(k, o), z = q.zero(k, o);
                double mExact = -s * z;                              // exact: an 11-bit S times a 24-bit Z
                short d, m;
                try {
                    d = Half.round(s);
                    m = Half.round(mExact);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("output row " + o + ", group " + k + ": scale " + s + ", zero " + z
                            + ": " + e.getMessage(), e);
                }
                double dv = Half.value(d), mv = Half.value(m);
                maxM = Math.max(maxM, Math.abs(mExact));
                int at = b * BLOCK_BYTES, c0 = o * cols + b * BLOCK;
                putHalf(row, at, d);
                putHalf(row, at + 2, m);
                for (int j = 0; j < BLOCK / 2; j++) {
                    int lo = codes[c0 + j], hi = codes[c0 + j + BLOCK / 2];
                    row[at + 4 + j] = (byte) (lo | hi << 4);
                }
                for (int j = 0; j < BLOCK; j++) {
                    int c = codes[c0 + j];
                    double err = Math.abs(dv * c + mv - s * (c - z));
                    maxError = Math.max(maxError, err);
                    maxRatio = Math.max(maxRatio, err / bound(s, z, d, c));
                }
            }
            out.write(row);
        }
        return new Rounding(maxError, maxRatio, maxM);
    }

    /** Block {@code block}'s scale d. */
    public static double d(byte[] data, int block) {
        return Half.value(getHalf(data, block * BLOCK_BYTES));
    }

    /** Block {@code block}'s offset m. */
    public static double m(byte[] data, int block) {
        return Half.value(getHalf(data, block * BLOCK_BYTES + 2));
    }

    /** The 4-bit code of weight {@code j} (0..31) of block {@code block}. */
    public static int code(byte[] data, int block, int j) {
        int q = data[block * BLOCK_BYTES + 4 + (j % (BLOCK / 2))] & 0xFF;
        return j < BLOCK / 2 ? q & 0x0F : q >>> 4;
    }

    /** All weights of {@code blocks} blocks as ggml dequantizes them (float {@code x * d + m}). */
    public static float[] decode(byte[] data, int blocks) {
        float[] w = new float[blocks * BLOCK];
        for (int b = 0; b < blocks; b++) {
            float d = (float) d(data, b), m = (float) m(data, b);
            for (int j = 0; j < BLOCK; j++) {
                w[b * BLOCK + j] = code(data, b, j) * d + m;
            }
        }
        return w;
    }

    static void checkOrder(int[] rowOrder, int rows) {
        if (rowOrder == null) {
            return;
        }
        boolean[] seen = new boolean[rows];
        if (rowOrder.length != rows) {
            throw new IllegalArgumentException("row order has " + rowOrder.length + " entries for " + rows + " rows");
        }
        for (int r : rowOrder) {
            if (r < 0 || r >= rows || seen[r]) {
                throw new IllegalArgumentException("row order is not a permutation of 0.." + (rows - 1));
            }
            seen[r] = true;
        }
    }

    static void putHalf(byte[] b, int at, short h) {
        b[at] = (byte) h;
        b[at + 1] = (byte) (h >>> 8);
    }

    static short getHalf(byte[] b, int at) {
        return (short) ((b[at] & 0xFF) | (b[at + 1] << 8));
    }
}
