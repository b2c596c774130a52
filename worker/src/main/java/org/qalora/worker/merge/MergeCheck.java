package org.qalora.worker.merge;

/** The error measure merge verification and the fixture tests use. */
public final class MergeCheck {
    private MergeCheck() {}

    /** {@code ||out - ref|| / ||ref||} in double (Frobenius norms). */
    public static double relativeError(float[] out, float[] ref) {
        if (out.length != ref.length) {
            throw new IllegalArgumentException("comparing " + out.length + " values with " + ref.length);
        }
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            double diff = (double) out[i] - ref[i];
            num += diff * diff;
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }
}
