package org.qalora.quant.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

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
    private static final VectorSpecies<Float> F = Simd.FLOAT;

    /** {@code [n]}: round(x / scale), in [-127, 127] (int lanes: the kernel reads them as ints). */
    final int[] values;
    /** {@code [n / BLOCK]}. */
    final float[] scales;

    private Int8Activations(int[] values, float[] scales) {
        this.values = values;
        this.scales = scales;
    }

    /**
     * Rounds {@code x[off .. off + n)}; {@code n} must be a multiple of {@value #BLOCK}. Rounding is half away from
     * zero, computed as {@code (int) (v + copySign(0.5, v))} with {@code v = x * (127 / max)} in float. Vectorized:
     * a scalar loop with {@code Math.round} took 15-35 us for 4096 values, 2-8% of a 4096 x 11008 GEMV.
     */
    public static Int8Activations quantize(float[] x, int off, int n) {
        if (n % BLOCK != 0) {
            throw new IllegalArgumentException("int8 activations come in blocks of " + BLOCK + " values; " + n
                    + " is not a multiple of " + BLOCK);
        }
        Checks.matrix("x", x, off, 1, n, n);
        int[] values = new int[n];
        float[] scales = new float[n / BLOCK];
        FloatVector half = FloatVector.broadcast(F, 0.5f);
        for (int k = 0; k < scales.length; k++) {
            FloatVector largest = FloatVector.zero(F);
            for (int i = k * BLOCK; i < (k + 1) * BLOCK; i += F.length()) {
                largest = largest.max(FloatVector.fromArray(F, x, off + i).abs());
            }
            float max = largest.reduceLanes(VectorOperators.MAX); // exact in any order
            // A NaN or infinite value makes the scale non-finite, so the block's values (scale * q) are NaN and a
            // product with them is NaN, as it would be without rounding.
            float inverse = max == 0 || !Float.isFinite(max) ? 0 : MAX / max;
            scales[k] = max / MAX;
            FloatVector inv = FloatVector.broadcast(F, inverse);
            for (int i = k * BLOCK; i < (k + 1) * BLOCK; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, x, off + i).mul(inv);
                ((IntVector) v.add(half.blend(-0.5f, v.lt(0f))).convert(VectorOperators.F2I, 0))
                        .max(-MAX).min(MAX).intoArray(values, i);
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
