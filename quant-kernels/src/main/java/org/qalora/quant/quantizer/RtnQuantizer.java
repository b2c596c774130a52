package org.qalora.quant.quantizer;

import org.qalora.quant.PackedCodes;
import org.qalora.quant.QuantizedMatrix;

/**
 * Round-to-nearest group-wise quantization: for every output row and every group of {@code groupSize}
 * consecutive inputs, min-max parameters ({@link MinMaxParams}) and each weight rounded independently. No
 * calibration data; the baseline GPTQ must beat.
 */
public final class RtnQuantizer {
    private final int bits;
    private final int groupSize;
    private final boolean sym;

    /**
     * @param groupSize inputs per group; -1 = one group per row (whole input dimension)
     * @param sym       symmetric (zero fixed at 2^(bits-1)) instead of asymmetric min-max
     */
    public RtnQuantizer(int bits, int groupSize, boolean sym) {
        PackedCodes.checkBits(bits);
        if (groupSize != -1 && groupSize <= 0) {
            throw new IllegalArgumentException("group size " + groupSize + " must be positive (or -1 for whole rows)");
        }
        this.bits = bits;
        this.groupSize = groupSize;
        this.sym = sym;
    }

    /**
     * Quantizes a dense weight.
     *
     * @param weight {@code [out, in]} row-major, HF Linear layout
     * @param name   the tensor, for error messages
     */
    public QuantizedMatrix quantize(float[] weight, int out, int in, String name) {
        int g = groupSize == -1 ? in : groupSize;
        checkShape(weight, out, in, g, name);
        int maxq = (1 << bits) - 1;
        int groups = in / g;
        float[] scales = new float[groups * out]; // [G, O]
        float[] zeros = new float[groups * out];  // [G, O]
        int[] codes = new int[out * in];          // [O, I]
        for (int o = 0; o < out; o++) {
            for (int k = 0; k < groups; k++) {
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                for (int i = k * g; i < (k + 1) * g; i++) {
                    float w = weight[o * in + i];
                    min = Math.min(min, w);
                    max = Math.max(max, w);
                }
                MinMaxParams.compute(min, max, maxq, sym, scales, zeros, k * out + o);
                float s = scales[k * out + o];
                float z = zeros[k * out + o];
                for (int i = k * g; i < (k + 1) * g; i++) {
                    codes[o * in + i] = MinMaxParams.code(weight[o * in + i], s, z, maxq);
                }
            }
        }
        return QuantizedMatrix.fromCodes(out, in, bits, g, codes, scales, zeros);
    }

    static void checkShape(float[] weight, int out, int in, int groupSize, String name) {
        if (weight.length != (long) out * in) {
            throw new IllegalArgumentException(name + ": weight has " + weight.length + " values, expected [" + out + ", "
                    + in + "]");
        }
        if (in % groupSize != 0) {
            throw new IllegalArgumentException(name + ": group size " + groupSize + " does not divide the input dimension "
                    + in + "; " + org.qalora.quant.GroupSizes.hint(in));
        }
        if (in % 32 != 0 || out % 32 != 0) {
            throw new IllegalArgumentException(name + ": shape [" + out + ", " + in + "] is not a multiple of 32 in both"
                    + " dimensions, which GPTQ packing needs");
        }
        for (int j = 0; j < weight.length; j++) {
            if (!Float.isFinite(weight[j])) {
                throw new IllegalArgumentException(name + ": weight at (" + j / in + ", " + j % in + ") is " + weight[j]
                        + "; cannot quantize non-finite weights");
            }
        }
    }
}
