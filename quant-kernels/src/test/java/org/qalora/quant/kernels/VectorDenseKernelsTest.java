package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** {@link VectorDenseKernels} against {@link ReferenceDenseKernels}, bound in {@link ErrorBound}. */
class VectorDenseKernelsTest {
    private static final KernelPool POOL = new KernelPool(2);
    private final DenseKernels fast = new VectorDenseKernels(POOL);
    private final ReferenceDenseKernels reference = new ReferenceDenseKernels();

    /** (m, n, k): odd rows, columns that are not multiples of any vector width, depths across the KC slice. */
    static Stream<Arguments> shapes() {
        return Stream.of(
                Arguments.of(1, 1, 1), Arguments.of(3, 40, 17), Arguments.of(17, 72, 300),
                Arguments.of(33, 100, 31), Arguments.of(6, 32, 256), Arguments.of(13, 130, 513),
                Arguments.of(50, 7, 70), Arguments.of(64, 200, 257), Arguments.of(5, 3, 0),
                // one to three rows: A B^T takes the dot-product path, threaded over columns when large
                Arguments.of(1, 300, 4096), Arguments.of(2, 129, 1000), Arguments.of(3, 70, 33), Arguments.of(2, 5, 0));
    }

    enum Layout { NT, NN, TN }

    @ParameterizedTest
    @MethodSource("shapes")
    void allLayoutsMatchTheReferenceWithPaddedLeadingDimensions(int m, int n, int k) {
        Random random = new Random(31L * m + 7L * n + k);
        for (Layout layout : Layout.values()) {
            for (boolean accumulate : new boolean[] {false, true}) {
                // A and B stored with 3 spare columns per row, C with 5, at nonzero offsets.
                int aRows = layout == Layout.TN ? k : m;
                int aCols = layout == Layout.TN ? m : k;
                int bRows = layout == Layout.NT ? n : k;
                int bCols = layout == Layout.NT ? k : n;
                int lda = aCols + 3;
                int ldb = bCols + 3;
                int ldc = n + 5;
                float[] a = KernelTestData.randomFloats(random, 2 + aRows * lda);
                float[] b = KernelTestData.randomFloats(random, 1 + bRows * ldb);
                float[] c = KernelTestData.randomFloats(random, 4 + m * ldc);
                float[] expected = c.clone();
                float[] actual = c.clone();
                float[] magnitude = ErrorBound.abs(c);
                run(reference, layout, m, n, k, a, lda, b, ldb, expected, ldc, accumulate);
                run(fast, layout, m, n, k, a, lda, b, ldb, actual, ldc, accumulate);
                run(reference, layout, m, n, k, ErrorBound.abs(a), lda, ErrorBound.abs(b), ldb, magnitude, ldc,
                        accumulate);
                ErrorBound.assertWithin(expected, actual, magnitude, k + 1,
                        layout + " m=" + m + " n=" + n + " k=" + k + " accumulate=" + accumulate);
            }
        }
    }

    private static void run(DenseKernels kernels, Layout layout, int m, int n, int k, float[] a, int lda, float[] b,
                            int ldb, float[] c, int ldc, boolean accumulate) {
        switch (layout) {
            case NT -> kernels.matmulNT(m, n, k, a, 2, lda, b, 1, ldb, c, 4, ldc, accumulate);
            case NN -> kernels.matmulNN(m, n, k, a, 2, lda, b, 1, ldb, c, 4, ldc, accumulate);
            case TN -> kernels.matmulTN(m, n, k, a, 2, lda, b, 1, ldb, c, 4, ldc, accumulate);
        }
    }

    @Test
    void resultsAreBitIdenticalAcrossThreadCounts() {
        Random random = new Random(5);
        int m = 70;
        int n = 333;
        int k = 600;
        float[] a = KernelTestData.randomFloats(random, m * k);
        float[] b = KernelTestData.randomFloats(random, n * k);
        float[] bNN = KernelTestData.randomFloats(random, k * n);
        float[][] nt = new float[3][m * n];
        float[][] nn = new float[3][m * n];
        for (int threads = 1; threads <= 3; threads++) {
            try (KernelPool pool = new KernelPool(threads)) {
                VectorDenseKernels kernels = new VectorDenseKernels(pool);
                kernels.matmulNT(a, 0, m, k, b, 0, n, nt[threads - 1], 0, false);
                kernels.matmulNN(a, 0, m, k, bNN, 0, n, nn[threads - 1], 0, false);
            }
        }
        assertArrayEquals(nt[0], nt[1]);
        assertArrayEquals(nt[0], nt[2]);
        assertArrayEquals(nn[0], nn[1]);
        assertArrayEquals(nn[0], nn[2]);
        float[][] dot = new float[3][2 * n];                       // two rows: the dot-product path
        for (int threads = 1; threads <= 3; threads++) {
            try (KernelPool pool = new KernelPool(threads)) {
                new VectorDenseKernels(pool).matmulNT(a, 0, 2, k, b, 0, n, dot[threads - 1], 0, false);
            }
        }
        assertArrayEquals(dot[0], dot[1]);
        assertArrayEquals(dot[0], dot[2]);
    }
}
