package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qalora.quant.QuantizedMatrix;

/**
 * {@link VectorQuantKernels} against {@link ReferenceQuantKernels}: every bit width, group sizes 32/64/128, odd
 * token counts (1 and 3 take the GEMV path, 17 and 33 the tiled one), output sizes that are not multiples of
 * any vector width, real-valued zeros. The error bound is {@link ErrorBound}'s with {@code magnitude = sum |x| *
 * |w|}; GEMV, which factors the zero point out of each group, is bound by {@code sum |x| * scale * (|q| + |z|)}.
 * The build runs this class once per forced vector width (128/256/512 bits).
 */
class VectorQuantKernelsTest {
    private static final KernelPool POOL = new KernelPool(2);
    private static final int[] TOKENS = {1, 3, 17, 33};
    private final VectorQuantKernels fast = new VectorQuantKernels(POOL);
    private final ReferenceQuantKernels reference = new ReferenceQuantKernels();
    private final ReferenceDenseKernels dense = new ReferenceDenseKernels();

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> cases = Stream.builder();
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int groupSize : new int[] {32, 64, 128}) {
                for (int out : new int[] {40, 72, 100}) {
                    cases.add(Arguments.of(bits, groupSize, out, 384));
                }
            }
        }
        // Larger outputs (more than one KC slice in the transposed product), inputs not a multiple of 64,
        // a group size that is not a power of two, and groups smaller than a 2-bit word.
        cases.add(Arguments.of(4, 32, 300, 320));
        cases.add(Arguments.of(3, 96, 130, 288));
        cases.add(Arguments.of(2, 8, 72, 64));
        return cases.build();
    }

    @ParameterizedTest(name = "int{0} g{1} O={2} I={3}")
    @MethodSource("cases")
    void kernelsMatchTheReference(int bits, int groupSize, int out, int in) {
        Random random = new Random(1000L * bits + 10L * groupSize + out);
        QuantizedMatrix m = KernelTestData.randomMatrix(random, out, in, bits, groupSize, false);
        PreparedWeight w = fast.prepare(m);
        PreparedWeight r = reference.prepare(m);
        float[] weight = m.dequantize(); // [O, I]
        float[] absWeight = ErrorBound.abs(weight);

        float[] dequantized = new float[out * in];
        fast.dequantize(w, dequantized);
        assertArrayEquals(weight, dequantized, "dequantize must be bit-exact");

        for (int tokens : TOKENS) {
            String what = "int" + bits + " g" + groupSize + " O=" + out + " I=" + in + " T=" + tokens;
            float[] x = KernelTestData.randomFloats(random, 3 + tokens * in); // [T, I] at offset 3
            float[] yRef = new float[2 + tokens * out]; // [T, O] at offset 2
            float[] y = new float[2 + tokens * out];
            Arrays.fill(y, Float.NaN); // matmul overwrites; a skipped element stays NaN and fails
            y[0] = y[1] = 0;
            float[] magnitude = new float[2 + tokens * out];
            reference.matmul(r, x, 3, tokens, yRef, 2);
            fast.matmul(w, x, 3, tokens, y, 2);
            dense.matmulNT(ErrorBound.abs(x), 3, tokens, in, absWeight, 0, out, magnitude, 2, false);
            if (tokens < VectorQuantKernels.GEMM_MIN_TOKENS) {
                magnitude = gemvMagnitude(m, x, 3, tokens, 2);
            }
            ErrorBound.assertWithin(yRef, y, magnitude, in, "matmul " + what);

            boolean accumulate = tokens % 2 == 1 && tokens > 1;
            float[] dy = KernelTestData.randomFloats(random, tokens * out); // [T, O]
            float[] dx = KernelTestData.randomFloats(random, 1 + tokens * in); // [T, I] at offset 1
            if (!accumulate) {
                Arrays.fill(dx, 1, dx.length, Float.NaN);
            }
            float[] dxRef = dx.clone();
            float[] dxMagnitude = accumulate ? ErrorBound.abs(dx) : new float[dx.length];
            reference.matmulTransposed(r, dy, 0, tokens, dxRef, 1, accumulate);
            fast.matmulTransposed(w, dy, 0, tokens, dx, 1, accumulate);
            dense.matmulNN(ErrorBound.abs(dy), 0, tokens, out, absWeight, 0, in, dxMagnitude, 1, accumulate);
            ErrorBound.assertWithin(dxRef, dx, dxMagnitude, out + 1, "matmulTransposed " + what);
        }

        float[] x = KernelTestData.randomFloats(random, in);
        float[] yRef = new float[out];
        float[] y = new float[out + 1];
        Arrays.fill(y, Float.NaN);
        reference.gemv(r, x, 0, yRef, 0);
        fast.gemv(w, x, 0, y, 1);
        assertFalse(Float.isNaN(y[out]), "gemv wrote every output");
        ErrorBound.assertWithin(yRef, Arrays.copyOfRange(y, 1, out + 1), gemvMagnitude(m, x, 0, 1, 0), in, "gemv");
    }

    /** {@code sum_i |x[t, i]| * scale * (|q| + |zero|)}: the magnitude of the terms GEMV actually adds. */
    private static float[] gemvMagnitude(QuantizedMatrix m, float[] x, int xOff, int tokens, int resultOff) {
        int in = m.inFeatures();
        int out = m.outFeatures();
        int[] codes = m.codes(); // [O, I]
        float[] magnitude = new float[resultOff + tokens * out];
        for (int t = 0; t < tokens; t++) {
            for (int o = 0; o < out; o++) {
                double sum = 0;
                for (int i = 0; i < in; i++) {
                    int g = i / m.groupSize();
                    sum += Math.abs(x[xOff + t * in + i]) * m.scale(g, o)
                            * (codes[o * in + i] + Math.abs(m.zero(g, o)));
                }
                magnitude[resultOff + t * out + o] = (float) sum;
            }
        }
        return magnitude;
    }

    /**
     * The blocked weight keeps no copy of its source (one copy of a loaded model's weights), so {@code source()}
     * rebuilds it: it must be the matrix prepared, bit for bit, at every width (3-bit codes sit in 4-bit lanes),
     * with padded columns (O not a multiple of the block) and after {@code withZeros}.
     */
    @ParameterizedTest(name = "int{0} g{1} O={2} I={3}")
    @MethodSource("cases")
    void sourceIsRebuiltBitForBit(int bits, int groupSize, int out, int in) {
        QuantizedMatrix m = KernelTestData.randomMatrix(new Random(7L * bits + out), out, in, bits, groupSize, true);
        PreparedWeight w = fast.prepare(m);
        assertEquals(m, w.source());
        assertEquals(java.util.List.of(out, in, bits, groupSize),
                java.util.List.of(w.outFeatures(), w.inFeatures(), w.bits(), w.groupSize()));
        float[] merged = KernelTestData.randomFloats(new Random(out), m.zeros().length);
        assertEquals(m.withZeros(merged), fast.withZeros(w, merged).source());
    }

    @Test
    void withZerosEqualsPreparingTheMergedMatrix() {
        Random random = new Random(11);
        QuantizedMatrix m = KernelTestData.randomMatrix(random, 72, 256, 4, 64, true);
        float[] merged = KernelTestData.randomFloats(random, m.zeros().length);
        PreparedWeight swapped = fast.withZeros(fast.prepare(m), merged);
        PreparedWeight fresh = fast.prepare(m.withZeros(merged));
        float[] x = KernelTestData.randomFloats(random, 9 * 256);
        float[] a = new float[9 * 72];
        float[] b = new float[9 * 72];
        fast.matmul(swapped, x, 0, 9, a, 0);
        fast.matmul(fresh, x, 0, 9, b, 0);
        assertArrayEquals(b, a);
        float[] before = new float[9 * 72];
        fast.matmul(fast.prepare(m), x, 0, 9, before, 0);
        assertFalse(Arrays.equals(before, a), "new zeros change the product");
        assertThrows(IllegalArgumentException.class, () -> fast.withZeros(fresh, new float[3]));
    }

    @Test
    void resultsAreBitIdenticalAcrossThreadCountsAndRuns() {
        Random random = new Random(12);
        QuantizedMatrix m = KernelTestData.randomMatrix(random, 576, 512, 4, 32, false);
        float[] x = KernelTestData.randomFloats(random, 40 * 512); // [40, 512]
        float[] dy = KernelTestData.randomFloats(random, 40 * 576); // [40, 576]
        float[][] results = new float[4][];
        for (int run = 0; run < 4; run++) {
            int threads = run == 3 ? 2 : run + 1;
            try (KernelPool pool = new KernelPool(threads)) {
                VectorQuantKernels kernels = new VectorQuantKernels(pool);
                PreparedWeight w = kernels.prepare(m);
                float[] y = new float[40 * 576];
                float[] dx = new float[40 * 512];
                float[] yOne = new float[576];
                kernels.matmul(w, x, 0, 40, y, 0);
                kernels.matmulTransposed(w, dy, 0, 40, dx, 0, false);
                kernels.gemv(w, x, 512, yOne, 0);
                float[] all = Arrays.copyOf(y, y.length + dx.length + yOne.length);
                System.arraycopy(dx, 0, all, y.length, dx.length);
                System.arraycopy(yOne, 0, all, y.length + dx.length, yOne.length);
                results[run] = all;
            }
        }
        for (int run = 1; run < 4; run++) {
            assertArrayEquals(results[0], results[run], "run " + run);
        }
    }

    @Test
    void weightsOfAnotherImplementationAreRejected() {
        QuantizedMatrix m = KernelTestData.randomMatrix(new Random(2), 8, 32, 4, 32, true);
        assertThrows(IllegalArgumentException.class,
                () -> fast.gemv(reference.prepare(m), new float[32], 0, new float[8], 0));
    }
}
