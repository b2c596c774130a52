package org.qalora.quant.kernels;

/**
 * A vector of activations rounded to int8, one float scale per block of {@value #BLOCK} values (symmetric,
 * {@code scale = max|x| / 127}, {@code q = round(x / scale)}), as llama.cpp's Q8 activations. The value it stands
 * for is {@code scale * q}, computed in float ({@link #value}); {@link QuantKernels#gemvInt8Activations} is
 * defined as the exact product with those values, so a kernel that multiplies integer codes by {@code q} with
 * integer arithmetic and a reference that multiplies floats compute the same number up to float rounding.
 *
 * <p>The rounding error per value is at most {@code scale / 2 = max|x over the block| / 254}, uniform with an RMS of
 * {@code scale / sqrt(12)}: 2.3e-3 of the block's largest value, about 4e-3 of the RMS of a block of uniform values.
 * A dot product inherits that relative RMS error, about 0.5% (3-6e-3 in {@code VectorInt8ActivationGemvTest}).
 */
public final class Int8Activations {
    /** Values per scale: a multiple of every code word's width (32 / bits inputs), so a block is whole words. */
    public static final int BLOCK = 32;
    private static final int MAX = 127;

    /** {@code [n]}: round(x / scale), in [-127, 127]. */
    final byte[] values;
    /** {@code [n / BLOCK]}. */
    final float[] scales;

    private Int8Activations(byte[] values, float[] scales) {
        this.values = values;
        this.scales = scales;
    }

    /** Rounds {@code x[off .. off + n)}; {@code n} must be a multiple of {@value #BLOCK}. */
    public static Int8Activations quantize(float[] x, int off, int n) {
        if (n % BLOCK != 0) {
            throw new IllegalArgumentException("int8 activations come in blocks of " + BLOCK + " values; " + n
                    + " is not a multiple of " + BLOCK);
        }
        Checks.matrix("x", x, off, 1, n, n);
        byte[] values = new byte[n];
        float[] scales = new float[n / BLOCK];
        for (int k = 0; k < scales.length; k++) {
            float max = 0;
            for (int i = k * BLOCK; i < (k + 1) * BLOCK; i++) {
                max = Math.max(max, Math.abs(x[off + i]));
            }
            // A NaN or infinite value makes the scale non-finite, so the block's values (scale * q) are NaN and a
            // product with them is NaN, as it would be without rounding.
            float inverse = max == 0 || !Float.isFinite(max) ? 0 : MAX / max;
            scales[k] = max / MAX;
            for (int i = k * BLOCK; i < (k + 1) * BLOCK; i++) {
                values[i] = (byte) Math.max(-MAX, Math.min(MAX, Math.round(x[off + i] * inverse)));
            }
        }
        return new Int8Activations(values, scales);
    }

    public int length() {
        return values.length;
    }

    /** The value {@code i} stands for: {@code scale * q} in float. */
    public float value(int i) {
        return scales[i / BLOCK] * values[i];
    }

    /** All values, {@link #value} for each index. */
    public float[] dequantized() {
        float[] x = new float[values.length];
        for (int i = 0; i < x.length; i++) {
            x[i] = value(i);
        }
        return x;
    }
}
