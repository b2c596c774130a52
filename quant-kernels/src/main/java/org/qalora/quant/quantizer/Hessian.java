package org.qalora.quant.quantizer;

/**
 * The GPTQ Hessian of one linear layer's inputs, {@code H = (2 / N) * sum over tokens of x x^T}, where {@code N}
 * counts calibration <em>sequences</em> (as IST-DASLab's {@code add_batch}: the scale is irrelevant to GPTQ
 * because damping is relative to the mean diagonal, but we keep the reference's normalisation).
 *
 * <p>Accumulated in double: a sum over hundreds of thousands of tokens in float32 loses the small eigenvalues that
 * the Cholesky factorisation then depends on. This only improves stability; the quantization loop itself is float32.
 */
public final class Hessian {
    private final int columns;
    private final double[] h;   // [I, I] row-major, symmetric
    private long sequences;

    public Hessian(int columns) {
        if (columns <= 0) {
            throw new IllegalArgumentException("Hessian needs a positive input dimension, got " + columns);
        }
        this.columns = columns;
        this.h = new double[Math.multiplyExact(columns, columns)];
    }

    public int columns() { return columns; }

    public long sequences() { return sequences; }

    /**
     * Adds a batch of activations.
     *
     * @param x         {@code [tokens, I]} row-major: the layer's inputs for {@code sequences} calibration sequences
     * @param sequences how many sequences the tokens came from (the reference's batch size)
     */
    public void add(float[] x, int tokens, int sequences) {
        if (x.length != (long) tokens * columns) {
            throw new IllegalArgumentException("activations have " + x.length + " values, expected [" + tokens + ", "
                    + columns + "]");
        }
        if (sequences <= 0) {
            throw new IllegalArgumentException("a batch must hold at least one sequence");
        }
        // H <- H * n / (n + nb); then H += (2 / (n + nb)) x x^T: a running mean over sequences.
        long total = this.sequences + sequences;
        double keep = (double) this.sequences / total;
        double add = 2.0 / total;
        for (int a = 0; a < columns; a++) {
            for (int b = a; b < columns; b++) {
                h[a * columns + b] *= keep;
            }
        }
        double[] row = new double[columns];
        for (int t = 0; t < tokens; t++) {
            int base = t * columns;
            for (int a = 0; a < columns; a++) {
                row[a] = x[base + a];
            }
            for (int a = 0; a < columns; a++) {
                double xa = row[a] * add;
                if (xa == 0) {
                    continue;
                }
                int ra = a * columns;
                for (int b = a; b < columns; b++) {
                    h[ra + b] += xa * row[b];
                }
            }
        }
        this.sequences = total;
    }

    /** The full symmetric matrix {@code [I, I]} (a copy). */
    public double[] matrix() {
        double[] full = new double[h.length];
        for (int a = 0; a < columns; a++) {
            for (int b = a; b < columns; b++) {
                full[a * columns + b] = h[a * columns + b];
                full[b * columns + a] = h[a * columns + b];
            }
        }
        return full;
    }
}
