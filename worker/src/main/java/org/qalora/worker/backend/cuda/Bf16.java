package org.qalora.worker.backend.cuda;

/** bfloat16 conversions on the host, bit for bit as the device's {@code __float2bfloat16_rn} and its inverse. */
final class Bf16 {
    private Bf16() {}

    /** Round to nearest even; NaN stays a (quiet) NaN. */
    static short fromFloat(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) {
            return (short) ((u >>> 16) | 0x40);
        }
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    static float toFloat(short b) {
        return Float.intBitsToFloat((b & 0xffff) << 16);
    }

    static short[] fromFloats(float[] x) {
        short[] out = new short[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = fromFloat(x[i]);
        }
        return out;
    }

    static float[] toFloats(short[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = toFloat(x[i]);
        }
        return out;
    }
}
