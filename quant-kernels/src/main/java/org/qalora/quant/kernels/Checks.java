package org.qalora.quant.kernels;

/** Argument checks shared by every kernel, so a bad call fails with a message naming the operand. */
final class Checks {
    private Checks() {}

    /** Checks that {@code rows} rows of {@code cols} elements, {@code ld} apart, fit
     * in {@code array} from {@code off}. */
    static void matrix(String name, float[] array, int off, int rows, int cols, int ld) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException(name + ": negative shape [" + rows + ", " + cols + "]");
        }
        if (ld < cols) {
            throw new IllegalArgumentException(name + ": leading dimension " + ld + " is smaller than the row length "
                    + cols);
        }
        if (off < 0) {
            throw new IllegalArgumentException(name + ": negative offset " + off);
        }
        long end = rows == 0 || cols == 0 ? off : off + (long) (rows - 1) * ld + cols;
        if (end > array.length) {
            throw new IllegalArgumentException(name + ": [" + rows + ", " + cols + "] with leading dimension " + ld
                    + " from offset " + off + " needs " + end + " elements, the array has " + array.length);
        }
    }

    static void tokens(int tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("token count must be >= 0, got " + tokens);
        }
    }
}
