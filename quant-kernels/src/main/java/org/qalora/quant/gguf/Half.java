package org.qalora.quant.gguf;

/**
 * IEEE 754 half precision (ggml's {@code ggml_half}): round-to-nearest-even from double, and the rounding error
 * bound every exactness claim of the GGUF export rests on.
 *
 * <p>Halves have an 11-bit significand. Rounding a normal value x (|x| >= 2^-14) to nearest moves it by at most half
 * a unit in the last place, which is at most |x| * 2^-11; below 2^-14 halves are subnormal with a fixed spacing of
 * 2^-24, so the move is at most 2^-25. Hence {@link #bound}: max(|x| * 2^-11, 2^-25).
 */
public final class Half {
    /** The largest finite half. */
    public static final double MAX = 65504.0;
    /** Unit roundoff of halves: 2^-11. */
    public static final double UNIT_ROUNDOFF = 0x1p-11;
    /** Half the subnormal spacing 2^-24. */
    public static final double SUBNORMAL_HALF_SPACING = 0x1p-25;

    private Half() {}

    /** The most a round-to-nearest half can differ from {@code x} (finite, in range). */
    public static double bound(double x) {
        return Math.max(Math.abs(x) * UNIT_ROUNDOFF, SUBNORMAL_HALF_SPACING);
    }

    /**
     * The half nearest to {@code x} (ties to even), as its bit pattern. Rounding through float first
     * ({@code floatToFloat16((float) x)}) can land on a tie of the half grid that x itself is not on (double
     * rounding), so the neighbour on the other side of x is compared too.
     *
     * @throws IllegalArgumentException when x is not finite or rounds beyond {@link #MAX}
     */
    public static short round(double x) {
        if (!Double.isFinite(x)) {
            throw new IllegalArgumentException("cannot store " + x + " as a half");
        }
        short h = Float.floatToFloat16((float) x);
        double hv = Float.float16ToFloat(h);
        if (Double.isInfinite(hv)) {
            throw new IllegalArgumentException(x + " is beyond the largest half (" + MAX + ")");
        }
        if (hv == x) {
            return h;
        }
        int sign = h & 0x8000;
        int mag = h & 0x7FFF;
        int otherBits;
        if (mag == 0) {
            otherBits = (x < 0 ? 0x8000 : 0) | 1;           // from a signed zero toward x: the smallest subnormal
        } else if (Math.abs(hv) > Math.abs(x) && (hv < 0) == (x < 0)) {
            otherBits = sign | (mag - 1);                    // overshot in magnitude: one step toward zero
        } else {
            otherBits = sign | (mag + 1);                    // undershot: one step away from zero
        }
        short other = (short) otherBits;
        double ov = Float.float16ToFloat(other);
        if (Double.isInfinite(ov)) {
            return h;
        }
        double e = Math.abs(hv - x), eo = Math.abs(ov - x);
        if (eo < e || (eo == e && (other & 1) == 0)) {
            return other;
        }
        return h;
    }

    public static double value(short h) {
        return Float.float16ToFloat(h);
    }
}
