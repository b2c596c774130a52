package org.qalora.quant.kernels;

import java.util.Random;
import org.qalora.quant.QuantizedMatrix;

/** Seeded random inputs for kernel tests. */
final class KernelTestData {
    private KernelTestData() {}

    /**
     * A random quantized matrix: uniform codes, positive scales around 0.01 and real-valued zeros (as after a
     * QA-LoRA merge) unless {@code integerZeros}.
     */
    static QuantizedMatrix randomMatrix(Random random, int out, int in, int bits, int groupSize,
                                        boolean integerZeros) {
        int maxCode = (1 << bits) - 1;
        int[] codes = new int[out * in]; // [O, I]
        for (int k = 0; k < codes.length; k++) {
            codes[k] = random.nextInt(maxCode + 1);
        }
        int groups = in / groupSize;
        float[] scales = new float[groups * out]; // [G, O]
        float[] zeros = new float[groups * out]; // [G, O]
        for (int k = 0; k < scales.length; k++) {
            scales[k] = 0.002f + 0.02f * random.nextFloat();
            zeros[k] = integerZeros ? random.nextInt(maxCode + 1) : maxCode * random.nextFloat();
        }
        return QuantizedMatrix.fromCodes(out, in, bits, groupSize, codes, scales, zeros);
    }

    /** Uniform values in [-1, 1). */
    static float[] randomFloats(Random random, int n) {
        float[] a = new float[n];
        for (int k = 0; k < n; k++) {
            a[k] = 2 * random.nextFloat() - 1;
        }
        return a;
    }
}
