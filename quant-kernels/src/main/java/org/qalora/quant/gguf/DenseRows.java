package org.qalora.quant.gguf;

import java.io.IOException;
import java.io.OutputStream;

/**
 * Dense float tensors as GGUF F32 or F16 rows, optionally in a permuted row order. F32 is a copy; F16 rounds each
 * value to the nearest half and reports the largest error against {@link Half#bound}.
 */
public final class DenseRows {
    private DenseRows() {}

    /**
     * Writes {@code values} ({@code [rows, cols]} row-major) as {@code type}; output row r is input row
     * {@code rowOrder[r]} (null: unchanged).
     *
     * @throws IllegalArgumentException when a value does not fit a half (F16) or the type is not a float type
     */
    public static Rounding write(float[] values, int rows, int cols, int[] rowOrder, GgmlType type, OutputStream out)
            throws IOException {
        if ((long) rows * cols != values.length) {
            throw new IllegalArgumentException(values.length + " values are not [" + rows + ", " + cols + "]");
        }
        Q41Blocks.checkOrder(rowOrder, rows);
        int width = switch (type) {
            case F32 -> 4;
            case F16 -> 2;
            default -> throw new IllegalArgumentException("dense rows are F32 or F16, not " + type);
        };
        byte[] row = new byte[cols * width];
        double maxError = 0, maxRatio = 0, maxAbs = 0;
        for (int r = 0; r < rows; r++) {
            int src = (rowOrder == null ? r : rowOrder[r]) * cols;
            for (int c = 0; c < cols; c++) {
                float x = values[src + c];
                maxAbs = Math.max(maxAbs, Math.abs(x));
                if (type == GgmlType.F32) {
                    int bits = Float.floatToRawIntBits(x);
                    for (int i = 0; i < 4; i++) {
                        row[4 * c + i] = (byte) (bits >>> (8 * i));
                    }
                } else {
                    short h;
                    try {
                        h = Half.round(x);
                    } catch (IllegalArgumentException e) {
                        throw new IllegalArgumentException("row " + (src / cols) + ", column " + c + ": "
                                + e.getMessage(), e);
                    }
                    Q41Blocks.putHalf(row, 2 * c, h);
                    double err = Math.abs(Half.value(h) - x);
                    maxError = Math.max(maxError, err);
                    maxRatio = Math.max(maxRatio, err / Half.bound(x));
                }
            }
            out.write(row);
        }
        return new Rounding(maxError, maxRatio, maxAbs);
    }
}
