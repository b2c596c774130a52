package org.qalora.quant;

import java.util.Arrays;

/**
 * A group-wise quantized weight in memory: {@code W[o, i] = scale[k, o] * (Q[i, o] - zero[k, o])} with
 * {@code k = i / groupSize}, contiguous groups along the input dimension.
 *
 * <p>This is the canonical form every stage shares (checkpoint codecs, quantizers, kernels, merge). It mirrors
 * the GPTQ checkpoint: {@code qweight} is packed along the input dimension exactly as on disk ({@link PackedCodes},
 * shape {@code [in*bits/32, out]}); scales are the fp16 values widened to float; zeros are the <em>true</em> zero
 * points as floats (no v1 "minus one"), because a merged QA-LoRA model has real-valued zeros that must never be
 * rounded back to integers. Kernels repack from here once, at load, into whatever layout they run fastest on.
 *
 * <p>Instances are immutable in shape; {@link #withZeros} makes the merged copy.
 */
public final class QuantizedMatrix {
    private final int outFeatures;
    private final int inFeatures;
    private final int bits;
    private final int groupSize;
    private final int[] qweight;
    private final float[] scales;
    private final float[] zeros;

    /**
     * @param qweight packed codes {@code [in*bits/32, out]}, row-major
     * @param scales  {@code [in/groupSize, out]}, row-major
     * @param zeros   {@code [in/groupSize, out]}, row-major, real-valued
     */
    public QuantizedMatrix(int outFeatures, int inFeatures, int bits, int groupSize,
                           int[] qweight, float[] scales, float[] zeros) {
        PackedCodes.checkBits(bits);
        if (outFeatures <= 0 || inFeatures <= 0) {
            throw new IllegalArgumentException("shape must be positive, got [" + outFeatures + ", " + inFeatures + "]");
        }
        if (groupSize <= 0 || inFeatures % groupSize != 0) {
            throw new IllegalArgumentException("group size " + groupSize + " does not divide the input dimension "
                    + inFeatures + ": " + GroupSizes.hint(inFeatures));
        }
        int groups = inFeatures / groupSize;
        require(qweight.length == (long) PackedCodes.wordsFor(inFeatures, bits) * outFeatures, "qweight", qweight.length,
                (long) PackedCodes.wordsFor(inFeatures, bits) * outFeatures);
        require(scales.length == (long) groups * outFeatures, "scales", scales.length, (long) groups * outFeatures);
        require(zeros.length == (long) groups * outFeatures, "zeros", zeros.length, (long) groups * outFeatures);
        this.outFeatures = outFeatures;
        this.inFeatures = inFeatures;
        this.bits = bits;
        this.groupSize = groupSize;
        this.qweight = qweight;
        this.scales = scales;
        this.zeros = zeros;
    }

    private static void require(boolean ok, String what, long got, long want) {
        if (!ok) {
            throw new IllegalArgumentException(what + " has " + got + " elements, expected " + want);
        }
    }

    /** Builds a matrix from unpacked codes {@code [out, in]} (row-major by output row). */
    public static QuantizedMatrix fromCodes(int outFeatures, int inFeatures, int bits, int groupSize,
                                            int[] codesOutIn, float[] scales, float[] zeros) {
        int[] inOut = new int[codesOutIn.length];
        for (int o = 0; o < outFeatures; o++) {
            for (int i = 0; i < inFeatures; i++) {
                inOut[i * outFeatures + o] = codesOutIn[o * inFeatures + i];
            }
        }
        return new QuantizedMatrix(outFeatures, inFeatures, bits, groupSize,
                PackedCodes.packRows(inOut, inFeatures, outFeatures, bits), scales, zeros);
    }

    public int outFeatures() { return outFeatures; }
    public int inFeatures() { return inFeatures; }
    public int bits() { return bits; }
    public int groupSize() { return groupSize; }
    public int groups() { return inFeatures / groupSize; }
    public int maxCode() { return (1 << bits) - 1; }

    /** Packed codes, GPTQ layout {@code [in*bits/32, out]}. Shared, do not modify. */
    public int[] qweight() { return qweight; }
    /** {@code [groups, out]}. Shared, do not modify. */
    public float[] scales() { return scales; }
    /** {@code [groups, out]}, real-valued true zero points. Shared, do not modify. */
    public float[] zeros() { return zeros; }

    /** The integer code of weight {@code (o, i)}. */
    public int code(int o, int i) {
        return PackedCodes.get(qweight, o, outFeatures, i, bits);
    }

    public float scale(int group, int o) { return scales[group * outFeatures + o]; }
    public float zero(int group, int o) { return zeros[group * outFeatures + o]; }

    /** The dequantized weight {@code (o, i)}: {@code scale * (code - zero)}, computed in float. */
    public float weight(int o, int i) {
        int k = i / groupSize;
        return scale(k, o) * (code(o, i) - zero(k, o));
    }

    /** All codes unpacked, {@code [out, in]} row-major. */
    public int[] codes() {
        int[] inOut = PackedCodes.unpackRows(qweight, inFeatures, outFeatures, bits);
        int[] outIn = new int[inOut.length];
        for (int i = 0; i < inFeatures; i++) {
            for (int o = 0; o < outFeatures; o++) {
                outIn[o * inFeatures + i] = inOut[i * outFeatures + o];
            }
        }
        return outIn;
    }

    /** Dense dequantized weight {@code [out, in]} row-major (reference path; kernels have faster ones). */
    public float[] dequantize() {
        int[] c = codes();
        float[] w = new float[c.length];
        for (int o = 0; o < outFeatures; o++) {
            for (int i = 0; i < inFeatures; i++) {
                int k = i / groupSize;
                w[o * inFeatures + i] = scale(k, o) * (c[o * inFeatures + i] - zero(k, o));
            }
        }
        return w;
    }

    /** True when every zero point is an integer in {@code [0, maxCode]}, i.e. it fits a packed qzeros tensor. */
    public boolean hasIntegerZeros() {
        for (float z : zeros) {
            if (z != Math.rint(z) || z < 0 || z > maxCode()) {
                return false;
            }
        }
        return true;
    }

    /** A copy sharing codes and scales with new zero points (what a QA-LoRA merge produces). */
    public QuantizedMatrix withZeros(float[] newZeros) {
        return new QuantizedMatrix(outFeatures, inFeatures, bits, groupSize, qweight, scales, newZeros);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof QuantizedMatrix m && m.outFeatures == outFeatures && m.inFeatures == inFeatures
                && m.bits == bits && m.groupSize == groupSize && Arrays.equals(m.qweight, qweight)
                && Arrays.equals(m.scales, scales) && Arrays.equals(m.zeros, zeros);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(qweight) * 31 + Arrays.hashCode(scales) * 17 + Arrays.hashCode(zeros);
    }

    @Override
    public String toString() {
        return "QuantizedMatrix[out=" + outFeatures + ", in=" + inFeatures + ", bits=" + bits + ", group=" + groupSize + "]";
    }
}
