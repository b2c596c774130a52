package org.qalora.worker.model;

/**
 * Rotary embedding parameters as HF LLaMA reads them: {@code rope_theta} and an optional {@code llama3} scaling
 * (factor, low/high frequency factors, original context length). {@code type} is "default" or "llama3".
 */
public record RopeParams(double theta, String type, double factor, double lowFreqFactor, double highFreqFactor,
                         int originalMaxPositions) {

    public static RopeParams plain(double theta) {
        return new RopeParams(theta, "default", 1, 1, 1, 0);
    }

    public static RopeParams llama3(double theta, double factor, double lowFreqFactor, double highFreqFactor,
                                    int originalMaxPositions) {
        return new RopeParams(theta, "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositions);
    }

    public RopeParams {
        if (!(theta > 0)) {
            throw new IllegalArgumentException("rope_theta must be positive, got " + theta);
        }
        if (!type.equals("default") && !type.equals("llama3")) {
            throw new IllegalArgumentException("rope type '" + type + "' is not supported: use default or llama3");
        }
    }

    /**
     * {@code inv_freq[i] = theta^(-2i/d)}, then HF's {@code _compute_llama3_parameters} when the type is llama3:
     * long wavelengths are divided by {@code factor}, short ones kept, the band between interpolated smoothly.
     */
    public double[] inverseFrequencies(int headDim) {
        int half = headDim / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) {
            inv[i] = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
        }
        if (type.equals("llama3")) {
            double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
            double highFreqWavelen = originalMaxPositions / highFreqFactor;
            for (int i = 0; i < half; i++) {
                double wavelen = 2 * Math.PI / inv[i];
                if (wavelen > lowFreqWavelen) {
                    inv[i] = inv[i] / factor;
                } else if (wavelen >= highFreqWavelen) {
                    double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                    inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
                }
            }
        }
        return inv;
    }
}
