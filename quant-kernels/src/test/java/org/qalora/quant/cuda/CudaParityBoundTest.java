package org.qalora.quant.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.ReferenceQuantKernels;

/**
 * The GPU tests are only as good as {@link CudaParity}'s comparisons, so these run on any machine: the bound
 * accepts a float product summed in another order and rejects a product with one term dropped, and the exact
 * comparison rejects a one-ulp difference. (A single code off by one changes a product by only {@code |x| * scale},
 * which the bound may not see; code decoding is checked bit-exactly by the dequantize comparison instead.)
 */
class CudaParityBoundTest {
    private static final int OUT = 31;
    private static final int IN = 256;

    @Test
    void boundAcceptsReorderedFloatSumsAndRejectsOneWrongTerm() {
        Random random = new Random(11);
        QuantizedMatrix m = CudaParity.randomMatrix(random, OUT, IN, 4, 64);
        float[] x = CudaParity.randomVector(random, IN);
        ReferenceQuantKernels ref = new ReferenceQuantKernels();
        float[] want = new float[OUT];
        ref.gemv(ref.prepare(m), x, 0, want, 0);

        float[] backwards = new float[OUT];    // float sums, last input first: a legal reordering
        float[] oneTermOff = new float[OUT];   // the same, with input 100's term dropped (a skipped tile element)
        float[] magnitude = new float[OUT];    // sum |x| * scale * (|q| + |z|), as CudaParity computes it
        for (int o = 0; o < OUT; o++) {
            float sum = 0;
            float wrong = 0;
            double mag = 0;
            for (int i = IN - 1; i >= 0; i--) {
                int k = i / m.groupSize();
                float w = m.weight(o, i);
                sum += x[i] * w;
                wrong += i == 100 ? 0f : x[i] * w;
                mag += Math.abs(x[i]) * m.scale(k, o) * (m.code(o, i) + Math.abs(m.zero(k, o)));
            }
            backwards[o] = sum;
            oneTermOff[o] = wrong;
            magnitude[o] = (float) mag;
        }

        List<String> failures = new ArrayList<>();
        CudaParity.within(failures, "reordered", want, backwards, magnitude, IN);
        assertEquals(List.of(), failures);

        CudaParity.within(failures, "one term dropped", want, oneTermOff, magnitude, IN);
        assertEquals(1, failures.size(), "a product with a dropped term must fail the bound");
        assertTrue(failures.get(0).startsWith("one term dropped: element "), failures.get(0));
    }

    @Test
    void exactComparisonRejectsOneUlp() {
        float[] want = {1f, 2f, 3f};
        float[] got = {1f, Math.nextUp(2f), 3f};
        List<String> failures = new ArrayList<>();
        CudaParity.exact(failures, "dequantize", want, want.clone());
        assertEquals(List.of(), failures);
        CudaParity.exact(failures, "dequantize", want, got);
        assertEquals(1, failures.size());
        assertTrue(failures.get(0).contains("element 1"), failures.get(0));
    }
}
