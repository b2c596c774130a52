package org.qalora.quant.testing;

import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.gguf.Half;
import org.qalora.quant.gguf.Q41Blocks;

/**
 * The exactness check of a Q4_1 tensor against the quantized matrix it came from, weight by weight in exact (double)
 * arithmetic: GGUF's {@code d * q + m} against our {@code S * (q - Z)}, with the bound the half rounding allows:
 * {@code |m| 2^-11} (at least 2^-25, the subnormal half spacing) for m = -S Z, plus {@code |S| 2^-11 * q} when the
 * stored d is not S itself.
 */
public final class Q41Check {
    private Q41Check() {}

    /**
     * @param maxError   max |d q + m - S (q - Z)| over all weights
     * @param worstRatio max of that error over its bound: at most 1 when the tensor is what it should be
     * @param codeErrors weights whose stored code differs from the matrix's
     */
    public record Result(double maxError, double worstRatio, long codeErrors) {
        public boolean holds() { return worstRatio <= 1 && codeErrors == 0; }
    }

    /** GGUF row r of {@code data} is compared with row {@code rowOrder[r]} of {@code q} (null: row r). */
    public static Result compare(QuantizedMatrix q, byte[] data, int[] rowOrder) {
        int blocksPerRow = q.inFeatures() / Q41Blocks.BLOCK;
        if (data.length != (long) q.outFeatures() * blocksPerRow * Q41Blocks.BLOCK_BYTES) {
            throw new AssertionError("Q4_1 data has " + data.length + " bytes, " + q + " needs "
                    + (long) q.outFeatures() * blocksPerRow * Q41Blocks.BLOCK_BYTES);
        }
        int[] codes = q.codes();
        double maxError = 0, worst = 0;
        long codeErrors = 0;
        for (int r = 0; r < q.outFeatures(); r++) {
            int o = rowOrder == null ? r : rowOrder[r];
            for (int b = 0; b < blocksPerRow; b++) {
                int block = r * blocksPerRow + b;
                double d = Q41Blocks.d(data, block), m = Q41Blocks.m(data, block);
                int k = b * Q41Blocks.BLOCK / q.groupSize();
                double s = q.scale(k, o), z = q.zero(k, o);
                for (int j = 0; j < Q41Blocks.BLOCK; j++) {
                    int stored = Q41Blocks.code(data, block, j);
                    int code = codes[o * q.inFeatures() + b * Q41Blocks.BLOCK + j];
                    codeErrors += stored == code ? 0 : 1;
                    double err = Math.abs(d * stored + m - s * (code - z));
                    double bound = Half.bound(-s * z) + (d == s ? 0 : Half.bound(s) * code);
                    maxError = Math.max(maxError, err);
                    worst = Math.max(worst, err / bound);
                }
            }
        }
        return new Result(maxError, worst, codeErrors);
    }
}
