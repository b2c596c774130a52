package org.qalora.quant.kernels.bench;

import java.util.SplittableRandom;
import org.qalora.quant.QuantizedMatrix;

/** Seeded benchmark inputs, built fast (random words are valid packed codes at every bit width). */
final class BenchData {
    private BenchData() {}

    static QuantizedMatrix randomMatrix(long seed, int out, int in, int bits, int groupSize) {
        SplittableRandom random = new SplittableRandom(seed);
        int[] qweight = new int[in / 32 * bits * out]; // [I*bits/32, O]
        for (int k = 0; k < qweight.length; k++) {
            qweight[k] = random.nextInt();
        }
        int groups = in / groupSize;
        float[] scales = new float[groups * out]; // [G, O]
        float[] zeros = new float[groups * out]; // [G, O], real-valued as after a merge
        for (int k = 0; k < scales.length; k++) {
            scales[k] = 0.002f + 0.02f * (float) random.nextDouble();
            zeros[k] = ((1 << bits) - 1) * (float) random.nextDouble();
        }
        return new QuantizedMatrix(out, in, bits, groupSize, qweight, scales, zeros);
    }

    static float[] randomFloats(long seed, int n) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int k = 0; k < n; k++) {
            a[k] = (float) (2 * random.nextDouble() - 1);
        }
        return a;
    }

    /** Kernel threads for a benchmark: the {@code threads} parameter, or all processors when it is 0. */
    static int threads(int requested) {
        return requested > 0 ? requested : Runtime.getRuntime().availableProcessors();
    }
}
