package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;

class ReferenceQuantKernelsTest {
    private final ReferenceQuantKernels kernels = new ReferenceQuantKernels();

    @Test
    void handComputedFourBitExample() {
        // W[o, i] = s * (q - z): 2 outputs, 32 inputs, one group. Row 0: q = i % 16, s = 0.5, z = 2.5;
        // row 1: q = 15 - i % 16, s = 2, z = 0.
        int[] codes = new int[2 * 32];
        for (int i = 0; i < 32; i++) {
            codes[i] = i % 16;
            codes[32 + i] = 15 - i % 16;
        }
        QuantizedMatrix m = QuantizedMatrix.fromCodes(2, 32, 4, 32, codes, new float[] {0.5f, 2f},
                new float[] {2.5f, 0f});
        float[] x = new float[32];
        x[0] = 1; // picks column 0: row 0 -> 0.5 * (0 - 2.5) = -1.25, row 1 -> 2 * 15 = 30
        x[17] = 2; // column 17: q = 1 and 14 -> 2 * 0.5 * (1 - 2.5) = -1.5, 2 * 2 * 14 = 56
        float[] y = new float[2];
        kernels.matmul(kernels.prepare(m), x, 0, 1, y, 0);
        assertArrayEquals(new float[] {-2.75f, 86f}, y);
    }

    @ParameterizedTest
    @CsvSource({"2,32", "3,32", "4,64", "8,128", "3,128"})
    void dequantizeMatchesQuantizedMatrixAndRawCodes(int bits, int groupSize) {
        Random random = new Random(bits * 1000L + groupSize);
        int out = 24;
        int in = 256;
        QuantizedMatrix m = KernelTestData.randomMatrix(random, out, in, bits, groupSize, false);
        float[] w = new float[out * in]; // [O, I]
        kernels.dequantize(kernels.prepare(m), w);
        assertArrayEquals(m.dequantize(), w);
        int[] codes = m.codes(); // [O, I], unpacked independently of the per-element path
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                int k = i / groupSize;
                float expected = m.scales()[k * out + o] * (codes[o * in + i] - m.zeros()[k * out + o]);
                assertEquals(expected, w[o * in + i], 0f, "W[" + o + ", " + i + "]");
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"2,32,3", "3,64,5", "4,32,1", "8,128,4"})
    void productsAgreeWithDenseReferenceOnDequantizedWeight(int bits, int groupSize, int tokens) {
        Random random = new Random(7 * bits + groupSize + tokens);
        int out = 40;
        int in = 256;
        QuantizedMatrix m = KernelTestData.randomMatrix(random, out, in, bits, groupSize, false);
        PreparedWeight w = kernels.prepare(m);
        float[] dense = m.dequantize(); // [O, I]
        ReferenceDenseKernels denseKernels = new ReferenceDenseKernels();

        float[] x = KernelTestData.randomFloats(random, tokens * in); // [T, I]
        float[] y = new float[tokens * out]; // [T, O]
        float[] yDense = new float[tokens * out];
        kernels.matmul(w, x, 0, tokens, y, 0);
        denseKernels.matmulNT(x, 0, tokens, in, dense, 0, out, yDense, 0, false);
        assertArrayEquals(yDense, y);

        float[] dy = KernelTestData.randomFloats(random, tokens * out); // [T, O]
        float[] dx = KernelTestData.randomFloats(random, tokens * in); // [T, I]
        float[] dxDense = dx.clone();
        kernels.matmulTransposed(w, dy, 0, tokens, dx, 0, true);
        denseKernels.matmulNN(dy, 0, tokens, out, dense, 0, in, dxDense, 0, true);
        assertArrayEquals(dxDense, dx);

        float[] yRow = new float[out + 3];
        kernels.gemv(w, x, (tokens - 1) * in, yRow, 3);
        for (int o = 0; o < out; o++) {
            assertEquals(y[(tokens - 1) * out + o], yRow[3 + o], 0f);
        }
    }

    @Test
    void rejectsWeightsOfAnotherImplementationAndShortArrays() {
        QuantizedMatrix m = KernelTestData.randomMatrix(new Random(1), 8, 32, 4, 32, true);
        PreparedWeight foreign = () -> m;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> kernels.gemv(foreign, new float[32], 0, new float[8], 0));
        assertTrue(e.getMessage().contains("another QuantKernels"), e.getMessage());
        IllegalArgumentException shortX = assertThrows(IllegalArgumentException.class,
                () -> kernels.matmul(kernels.prepare(m), new float[40], 0, 2, new float[16], 0));
        assertTrue(shortX.getMessage().startsWith("x:"), shortX.getMessage());
    }
}
