package org.qalora.quant.quantizer;

/**
 * Min-max group parameters as IST-DASLab's {@code Quantizer.find_params} computes them, made bit-exact with the
 * checkpoints the reference quantizer writes.
 *
 * <p>The range always contains 0 ({@code xmin = min(min w, 0)}, {@code xmax = max(max w, 0)}); symmetric widens it
 * to {@code [-max|x|, max|x|]} when it has a negative part and fixes the zero at {@code (maxq + 1) / 2}; an all-zero
 * group gets the range {@code [-1, 1]}. The step {@code (xmax - xmin) / maxq} is computed in float32 and then
 * rounded to fp16 <em>before</em> the zero point and the codes are derived from it: the scale on disk is fp16, and
 * using that very value keeps codes, zeros and scales consistent. (We matched the fixture made by the reference RTN
 * quantizer bit for bit this way; deriving the zero from the unrounded float32 scale mismatches ~0.8% of zeros.)
 * Rounding is half-to-even ({@link Math#rint}), as torch.round.
 */
final class MinMaxParams {
    private MinMaxParams() {}

    /** Fills {@code scale[r]} (an fp16 value) and {@code zero[r]} (an integer) for row {@code r}'s range. */
    static void compute(float xminIn, float xmaxIn, int maxq, boolean sym, float[] scale, float[] zero, int r) {
        float xmin = Math.min(xminIn, 0f);
        float xmax = Math.max(xmaxIn, 0f);
        if (sym) {
            xmax = Math.max(Math.abs(xmin), xmax);
            if (xmin < 0) {
                xmin = -xmax;
            }
        }
        if (xmin == 0f && xmax == 0f) {
            xmin = -1f;
            xmax = 1f;
        }
        float s = Float.float16ToFloat(Float.floatToFloat16((xmax - xmin) / maxq));
        if (s == 0f) {
            // A range below fp16's smallest subnormal step: keep the smallest positive fp16 so codes stay finite.
            s = Float.float16ToFloat((short) 1);
        }
        scale[r] = s;
        zero[r] = sym ? (maxq + 1) / 2 : (float) Math.rint(-xmin / s);
    }

    /**
     * Parameters of group {@code k} from columns {@code [start, start + g)} of every row of {@code w} ({@code [out, in]}
     * row-major) into {@code scale[k * out + o]}, {@code zero[k * out + o]}.
     */
    static void ofColumns(float[] w, int out, int in, int start, int g, int maxq, boolean sym, float[] scale,
                          float[] zero, int k) {
        for (int o = 0; o < out; o++) {
            float min = Float.POSITIVE_INFINITY;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = start; i < start + g; i++) {
                min = Math.min(min, w[o * in + i]);
                max = Math.max(max, w[o * in + i]);
            }
            compute(min, max, maxq, sym, scale, zero, k * out + o);
        }
    }

    /** The integer code of {@code w}: {@code clamp(rint(w / scale) + zero, 0, maxq)}. */
    static int code(float w, float scale, float zero, int maxq) {
        float q = (float) Math.rint(w / scale) + zero;
        return (int) Math.max(0f, Math.min(maxq, q));
    }

    /** The dequantized value of a code: {@code scale * (code - zero)}. */
    static float dequantize(int code, float scale, float zero) {
        return scale * (code - zero);
    }
}
