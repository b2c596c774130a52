package org.qalora.quant.quantizer;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.qalora.quant.kernels.DenseKernels;
import org.qalora.quant.kernels.VectorDenseKernels;

/**
 * The unscaled GPTQ Hessian sum {@code S = sum over sequences of X^T X} (float64), in the one accumulation order
 * that single-process and distributed calibration share, so that both give the same bits:
 * <ol>
 *   <li>each sequence's {@code X^T X} is one float32 product (as the reference computes it), added in double to
 *   the partial sum of its calibration chunk, sequences in order ({@link #add});
 *   <li>the chunk partials are added in chunk order, starting from zero ({@link #plus});
 *   <li>{@link #toHessian} scales once by {@code 2 / N}.
 * </ol>
 * Floating-point addition is not associative, so the chunking itself is part of the result: it depends on the
 * number of calibration sequences only (see the worker's {@code CalibrationChunks}), never on the cluster.
 * {@link #write} / {@link #read} carry a partial between JVMs exactly (raw IEEE bits).
 */
public final class HessianSum {
    private static final int MAGIC = 0x48535531; // "HSU1"
    /** Splits {@code X^T X} by output blocks only, never the sum over tokens: the same bits on any thread count. */
    private static final DenseKernels KERNELS = new VectorDenseKernels();

    private final int columns;
    private final double[] sum; // [I, I] row-major, symmetric
    private long sequences;
    private float[] batch;      // [I, I] scratch: X^T X of one sequence

    public HessianSum(int columns) {
        if (columns <= 0) {
            throw new IllegalArgumentException("Hessian needs a positive input dimension, got " + columns);
        }
        this.columns = columns;
        this.sum = new double[Math.multiplyExact(columns, columns)];
    }

    private HessianSum(int columns, double[] sum, long sequences) {
        this.columns = columns;
        this.sum = sum;
        this.sequences = sequences;
    }

    public int columns() { return columns; }

    public long sequences() { return sequences; }

    /** Adds one sequence's activations {@code x [tokens, I]}, on the Vector API kernels. */
    public void add(float[] x, int tokens) {
        add(x, tokens, KERNELS);
    }

    /** With the given kernels (their {@code matmulTN} must not split the token sum, or the bits depend on threads). */
    public void add(float[] x, int tokens, DenseKernels kernels) {
        if (x.length != (long) tokens * columns) {
            throw new IllegalArgumentException("activations have " + x.length + " values, expected [" + tokens + ", "
                    + columns + "]");
        }
        if (batch == null) {
            batch = new float[sum.length];
        }
        kernels.matmulTN(x, 0, columns, tokens, x, 0, columns, batch, 0, false); // batch[I, I] = x^T x
        for (int j = 0; j < sum.length; j++) {
            sum[j] += batch[j];
        }
        sequences++;
    }

    /** Adds another (chunk's) partial sum into this one, element by element. */
    public void plus(HessianSum other) {
        if (other.columns != columns) {
            throw new IllegalArgumentException("cannot add a " + other.columns + "-column Hessian sum to a " + columns
                    + "-column one");
        }
        for (int j = 0; j < sum.length; j++) {
            sum[j] += other.sum[j];
        }
        sequences += other.sequences;
    }

    /** The GPTQ Hessian {@code (2 / N) S}. */
    public Hessian toHessian() {
        if (sequences == 0) {
            throw new IllegalStateException("no calibration sequence was added to this Hessian");
        }
        double scale = 2.0 / sequences;
        double[] h = new double[sum.length];
        for (int j = 0; j < h.length; j++) {
            h[j] = sum[j] * scale;
        }
        return Hessian.of(columns, h, sequences);
    }

    /** Writes the exact bits: a small header, then the sum as little-endian doubles. */
    public void write(OutputStream out) throws IOException {
        DataOutputStream data = new DataOutputStream(out);
        data.writeInt(MAGIC);
        data.writeInt(columns);
        data.writeLong(sequences);
        ByteBuffer chunk = ByteBuffer.allocate(8 * 8192).order(ByteOrder.LITTLE_ENDIAN);
        for (int j = 0; j < sum.length; j++) {
            if (!chunk.hasRemaining()) {
                data.write(chunk.array(), 0, chunk.position());
                chunk.clear();
            }
            chunk.putDouble(sum[j]);
        }
        data.write(chunk.array(), 0, chunk.position());
        data.flush();
    }

    /** Reads what {@link #write} wrote; {@code where} names the source in errors. */
    public static HessianSum read(InputStream in, String where) throws IOException {
        DataInputStream data = new DataInputStream(in);
        int magic = data.readInt();
        if (magic != MAGIC) {
            throw new IOException(where + " is not a Hessian partial sum (bad magic " + Integer.toHexString(magic) + ")");
        }
        int columns = data.readInt();
        long sequences = data.readLong();
        if (columns <= 0 || sequences < 0) {
            throw new IOException(where + ": corrupt header (" + columns + " columns, " + sequences + " sequences)");
        }
        byte[] bytes = new byte[Math.multiplyExact(8, Math.multiplyExact(columns, columns))];
        data.readFully(bytes);
        double[] sum = new double[columns * columns];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(sum);
        return new HessianSum(columns, sum, sequences);
    }
}
