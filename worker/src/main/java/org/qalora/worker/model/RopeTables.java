package org.qalora.worker.model;

import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;

/**
 * cos/sin of {@code pos * inv_freq[i]} for positions {@code [0, length)}, each {@code [length, d/2]}, computed in
 * double (the HF float64 reference does the same) and stored as float.
 */
public final class RopeTables {
    public final Tensor cos; // [length, d/2]
    public final Tensor sin; // [length, d/2]
    public final int length;

    public RopeTables(Backend backend, RopeParams params, int headDim, int length) {
        double[] inv = params.inverseFrequencies(headDim);
        int half = headDim / 2;
        float[] c = new float[length * half];
        float[] s = new float[length * half];
        for (int pos = 0; pos < length; pos++) {
            for (int i = 0; i < half; i++) {
                double angle = pos * inv[i];
                c[pos * half + i] = (float) Math.cos(angle);
                s[pos * half + i] = (float) Math.sin(angle);
            }
        }
        this.cos = backend.upload(c, length, half);
        this.sin = backend.upload(s, length, half);
        this.length = length;
    }
}
