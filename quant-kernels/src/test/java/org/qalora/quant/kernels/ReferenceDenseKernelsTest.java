package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class ReferenceDenseKernelsTest {
    private final ReferenceDenseKernels kernels = new ReferenceDenseKernels();

    // A[2, 3] = [[1, 2, 3], [4, 5, 6]], B[3, 2] = [[7, 8], [9, 10], [11, 12]]: A·B = [[58, 64], [139, 154]].
    private static final float[] A = {1, 2, 3, 4, 5, 6};
    private static final float[] B = {7, 8, 9, 10, 11, 12};
    private static final float[] AB = {58, 64, 139, 154};

    @Test
    void handComputedProductsInAllThreeLayouts() {
        float[] c = new float[4];
        kernels.matmulNN(A, 0, 2, 3, B, 0, 2, c, 0, false);
        assertArrayEquals(AB, c);

        float[] bt = {7, 9, 11, 8, 10, 12}; // B^T [2, 3]
        kernels.matmulNT(A, 0, 2, 3, bt, 0, 2, c, 0, false);
        assertArrayEquals(AB, c);

        float[] at = {1, 4, 2, 5, 3, 6}; // A^T [3, 2]
        kernels.matmulTN(at, 0, 2, 3, B, 0, 2, c, 0, true);
        assertArrayEquals(new float[] {116, 128, 278, 308}, c);
    }

    @Test
    void leadingDimensionsSelectASlice() {
        // A as columns 1..3 of a [2, 5] buffer, C as columns 2..3 of a [2, 4] buffer.
        float[] a = {0, 1, 2, 3, 0, 0, 4, 5, 6, 0};
        float[] c = {-1, -1, 0, 0, -1, -1, 0, 0};
        kernels.matmulNN(2, 2, 3, a, 1, 5, B, 0, 2, c, 2, 4, false);
        assertArrayEquals(new float[] {-1, -1, 58, 64, -1, -1, 139, 154}, c);
    }

    @Test
    void transposedLayoutsAgreeOnRandomInputs() {
        Random random = new Random(3);
        int m = 5;
        int n = 7;
        int k = 9;
        float[] a = KernelTestData.randomFloats(random, m * k); // [m, k]
        float[] b = KernelTestData.randomFloats(random, k * n); // [k, n]
        float[] at = transpose(a, m, k); // [k, m]
        float[] bt = transpose(b, k, n); // [n, k]
        float[] nn = new float[m * n];
        float[] nt = new float[m * n];
        float[] tn = new float[m * n];
        kernels.matmulNN(a, 0, m, k, b, 0, n, nn, 0, false);
        kernels.matmulNT(a, 0, m, k, bt, 0, n, nt, 0, false);
        kernels.matmulTN(at, 0, m, k, b, 0, n, tn, 0, false);
        assertArrayEquals(nn, nt);
        assertArrayEquals(nn, tn);
    }

    @Test
    void shortArraysAreRejectedWithTheOperandName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> kernels.matmulNN(A, 0, 2, 3, B, 0, 2, new float[3], 0, false));
        assertTrue(e.getMessage().startsWith("C:"), e.getMessage());
    }

    static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }
}
