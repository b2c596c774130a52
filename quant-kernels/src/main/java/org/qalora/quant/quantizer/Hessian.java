package org.qalora.quant.quantizer;

import org.qalora.quant.kernels.DenseKernels;
import org.qalora.quant.kernels.VectorDenseKernels;

/**
 * The GPTQ Hessian of one linear layer's inputs, {@code H = (2 / N) * sum over tokens of x x^T}, where {@code N}
 * counts calibration <em>sequences</em> (as IST-DASLab's {@code add_batch}: the scale is irrelevant to GPTQ
 * because damping is relative to the mean diagonal, but we keep the reference's normalisation).
 *
 * <p>Each batch's {@code X^T X} is one float32 matrix product on the dense kernels (the reference computes the
 * whole Hessian in float32); the running sum over batches is kept in double, because summing hundreds of batches
 * in float32 loses the small eigenvalues the Cholesky factorisation depends on. This only improves stability.
 */
public final class Hessian {
    private final int columns;
    private final double[] h;   // [I, I] row-major, symmetric
    private final DenseKernels kernels;
    private float[] batch;      // [I, I] scratch: X^T X of the current batch
    private long sequences;

    /** On the Vector API kernels. */
    public Hessian(int columns) {
        this(columns, new VectorDenseKernels());
    }

    public Hessian(int columns, DenseKernels kernels) {
        if (columns <= 0) {
            throw new IllegalArgumentException("Hessian needs a positive input dimension, got " + columns);
        }
        this.columns = columns;
        this.h = new double[Math.multiplyExact(columns, columns)];
        this.kernels = kernels;
    }

    private Hessian(int columns, double[] h, long sequences) {
        this.columns = columns;
        this.h = h;
        this.kernels = null;
        this.sequences = sequences;
    }

    /** A finished Hessian {@code [I, I]} of {@code sequences} sequences (see {@link HessianSum}); takes {@code h}. */
    static Hessian of(int columns, double[] h, long sequences) {
        if (h.length != (long) columns * columns) {
            throw new IllegalArgumentException("Hessian has " + h.length + " values, expected " + columns + "^2");
        }
        return new Hessian(columns, h, sequences);
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
        // H <- H * n / (n + nb); then H += (2 / (n + nb)) x^T x: a running mean over sequences.
        long total = this.sequences + sequences;
        double keep = (double) this.sequences / total;
        double add = 2.0 / total;
        if (kernels == null) {
            throw new IllegalStateException("this Hessian was built from a finished sum; add to the HessianSum instead");
        }
        if (batch == null) {
            batch = new float[h.length];
        }
        kernels.matmulTN(x, 0, columns, tokens, x, 0, columns, batch, 0, false); // batch[I, I] = x^T x
        for (int j = 0; j < h.length; j++) {
            h[j] = h[j] * keep + add * batch[j];
        }
        this.sequences = total;
    }

    /** The symmetric matrix {@code [I, I]} (a copy). */
    public double[] matrix() {
        return h.clone();
    }
}
