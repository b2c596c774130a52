package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qalora.quant.QuantizedMatrix;

/**
 * The int8-activation GEMV ({@link QuantKernels#gemvInt8Activations}, {@link Int8ActivationGemv}) in two steps:
 * <ol>
 *   <li>the fast kernel against the naive reference of the same contract, {@code W · x̂} summed in double
 *       ({@link ReferenceQuantKernels}), within {@link ErrorBound}'s float-rounding bound: this catches a wrong
 *       code, pair, block scale or overflowing 16-bit sum;</li>
 *   <li>the contract against the exact product {@code W · x}: per element, {@code |W·x̂ - W·x| <= sum_i |W[o,i]|
 *       * scale(i) / 2} (each x moves by at most half its block's step), and the relative RMS error over the
 *       output is below 1e-2 (3-6e-3 here).</li>
 * </ol>
 * Rounding is half away from zero. Every bit width, group sizes 32/64/128 (the integer path) and narrower ones (the exact kernel on x̂), output
 * sizes that are not multiples of any vector width. The build runs this class once per forced vector width.
 */
class VectorInt8ActivationGemvTest {
    private static final KernelPool POOL = new KernelPool(2);
    private final VectorQuantKernels fast = new VectorQuantKernels(POOL);
    private final ReferenceQuantKernels reference = new ReferenceQuantKernels();

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> cases = Stream.builder();
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int groupSize : new int[] {32, 64, 128}) {
                for (int out : new int[] {40, 100}) {
                    cases.add(Arguments.of(bits, groupSize, out, 384));
                }
            }
        }
        // Larger products (the pool's parallel path), a group size that is not a power of two, and groups narrower
        // than an x block (the fallback), one of them narrower than a 2-bit word.
        cases.add(Arguments.of(4, 32, 300, 1024));
        cases.add(Arguments.of(2, 128, 200, 1024));
        cases.add(Arguments.of(3, 96, 130, 288));
        cases.add(Arguments.of(4, 16, 72, 64));
        cases.add(Arguments.of(2, 8, 72, 64));
        return cases.build();
    }

    @ParameterizedTest(name = "int{0} g{1} O={2} I={3}")
    @MethodSource("cases")
    void kernelMatchesTheReferenceAndStaysWithinTheRoundingBound(int bits, int groupSize, int out, int in) {
        Random random = new Random(7000L * bits + 10L * groupSize + out);
        QuantizedMatrix m = KernelTestData.randomMatrix(random, out, in, bits, groupSize, false);
        String what = "int" + bits + " g" + groupSize + " O=" + out + " I=" + in;
        float[] x = KernelTestData.randomFloats(random, 3 + in); // [I] at offset 3
        for (int k = 0; k < in / Int8Activations.BLOCK; k += 3) {
            // blocks of very different magnitudes, as real activations have (an outlier channel, a quiet block)
            for (int i = k * Int8Activations.BLOCK; i < (k + 1) * Int8Activations.BLOCK; i++) {
                x[3 + i] *= k % 2 == 0 ? 40 : 0.01f;
            }
        }
        float[] xHat = Int8Activations.quantize(x, 3, in).dequantized();

        float[] yRef = new float[out];
        reference.gemvInt8Activations(reference.prepare(m), x, 3, yRef, 0);
        float[] y = new float[out + 2];
        Arrays.fill(y, Float.NaN);
        fast.gemvInt8Activations(fast.prepare(m), x, 3, y, 2);
        assertFalse(Float.isNaN(y[1 + out]), "wrote every output");
        assertTrue(Float.isNaN(y[1]), "wrote nothing before yOff");
        float[] yFast = Arrays.copyOfRange(y, 2, out + 2);
        ErrorBound.assertWithin(yRef, yFast, gemvMagnitude(m, xHat), in, "int8-activation gemv " + what);

        // The contract against the exact product, with the reference's exact W · x (double sums).
        float[] yExact = new float[out];
        reference.gemv(reference.prepare(m), x, 3, yExact, 0);
        float[] scales = Int8Activations.quantize(x, 3, in).scales;
        double errorSquares = 0, exactSquares = 0;
        for (int o = 0; o < out; o++) {
            double bound = 0;
            for (int i = 0; i < in; i++) {
                bound += Math.abs(m.weight(o, i)) * scales[i / Int8Activations.BLOCK] / 2;
            }
            double error = Math.abs((double) yFast[o] - yExact[o]);
            double slack = 2.0 * in * ErrorBound.UNIT_ROUNDOFF * gemvMagnitude(m, xHat)[o];
            assertTrue(error <= bound + slack, what + ": element " + o + " is " + yFast[o] + ", exact " + yExact[o]
                    + " (error " + error + " > rounding bound " + bound + ")");
            errorSquares += error * error;
            exactSquares += (double) yExact[o] * yExact[o];
        }
        double relativeRms = Math.sqrt(errorSquares / exactSquares);
        assertTrue(relativeRms > 0, what + ": rounding x to int8 changed nothing: is the rounding applied?");
        // Each x moves by a uniform error of RMS step / sqrt(12), step = max|x in block| / 127: 2.3e-3 of the block's
        // largest value, 4e-3 of the RMS of uniform values; y's relative RMS error follows (3-6e-3 in these cases).
        assertTrue(relativeRms < 1e-2, what + ": relative RMS error " + relativeRms + " against the exact product");
    }

    /** {@code sum_i |x̂[i]| * scale * (|q| + |zero|)}: the magnitude of the terms the kernel adds (zero factored out). */
    private static float[] gemvMagnitude(QuantizedMatrix m, float[] xHat) {
        int in = m.inFeatures();
        float[] magnitude = new float[m.outFeatures()];
        for (int o = 0; o < m.outFeatures(); o++) {
            double sum = 0;
            for (int i = 0; i < in; i++) {
                int g = i / m.groupSize();
                sum += Math.abs(xHat[i]) * m.scale(g, o) * (m.code(o, i) + Math.abs(m.zero(g, o)));
            }
            magnitude[o] = (float) sum;
        }
        return magnitude;
    }

    @Test
    void activationsRoundToInt8PerBlockOf32() {
        Random random = new Random(3);
        float[] x = KernelTestData.randomFloats(random, 5 + 4 * Int8Activations.BLOCK);
        Arrays.fill(x, 5 + Int8Activations.BLOCK, 5 + 2 * Int8Activations.BLOCK, 0f); // an all-zero block
        x[5 + 2 * Int8Activations.BLOCK + 7] = -1000f; // an outlier: its block's step grows, the others' do not
        Int8Activations q = Int8Activations.quantize(x, 5, 4 * Int8Activations.BLOCK);
        assertEquals(4 * Int8Activations.BLOCK, q.length());
        for (int k = 0; k < 4; k++) {
            float max = 0;
            for (int i = k * Int8Activations.BLOCK; i < (k + 1) * Int8Activations.BLOCK; i++) {
                max = Math.max(max, Math.abs(x[5 + i]));
            }
            assertEquals(max / 127, q.scales[k], "block " + k + " scale");
            int largest = 0;
            for (int i = k * Int8Activations.BLOCK; i < (k + 1) * Int8Activations.BLOCK; i++) {
                assertTrue(Math.abs(q.values[i]) <= 127);
                largest = Math.max(largest, Math.abs(q.values[i]));
                assertEquals(q.scales[k] * q.values[i], q.value(i));
                assertTrue(Math.abs(q.value(i) - x[5 + i]) <= q.scales[k] * 0.5001f,
                        "value " + i + ": " + q.value(i) + " for " + x[5 + i]);
            }
            assertEquals(k == 1 ? 0 : 127, largest, "block " + k + ": its largest |x| maps to 127");
        }
        assertEquals(-127, q.values[2 * Int8Activations.BLOCK + 7]);
        assertArrayEquals(new float[Int8Activations.BLOCK],
                Arrays.copyOfRange(q.dequantized(), Int8Activations.BLOCK, 2 * Int8Activations.BLOCK));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Int8Activations.quantize(new float[40], 0, 40));
        assertTrue(e.getMessage().contains("40 is not a multiple of 32"), e.getMessage());
    }

    @Test
    void aNonFiniteInputGivesNaNAsTheExactProductWould() {
        QuantizedMatrix m = KernelTestData.randomMatrix(new Random(4), 40, 64, 4, 32, false);
        float[] x = KernelTestData.randomFloats(new Random(5), 64);
        x[40] = Float.POSITIVE_INFINITY;
        float[] y = new float[40];
        fast.gemvInt8Activations(fast.prepare(m), x, 0, y, 0);
        assertTrue(Float.isNaN(y[0]) && Float.isNaN(y[39]), "got " + y[0] + ", " + y[39]);
    }

    @Test
    void resultsAreBitIdenticalAcrossThreadCounts() {
        Random random = new Random(12);
        QuantizedMatrix m = KernelTestData.randomMatrix(random, 576, 1024, 4, 32, false);
        float[] x = KernelTestData.randomFloats(random, 1024);
        float[][] results = new float[3][576];
        for (int run = 0; run < 3; run++) {
            try (KernelPool pool = new KernelPool(run + 1)) {
                VectorQuantKernels kernels = new VectorQuantKernels(pool);
                kernels.gemvInt8Activations(kernels.prepare(m), x, 0, results[run], 0);
            }
        }
        assertArrayEquals(results[0], results[1]);
        assertArrayEquals(results[0], results[2]);
    }
}
