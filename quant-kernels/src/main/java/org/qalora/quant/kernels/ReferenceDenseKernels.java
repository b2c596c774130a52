package org.qalora.quant.kernels;

/**
 * The naive oracle for {@link DenseKernels}: one output element at a time, the dot product summed in double.
 * Slow by design; tests compare the fast kernels against it. The three layouts differ only in how A and B are
 * walked, so one loop serves all three through element strides.
 */
public final class ReferenceDenseKernels implements DenseKernels {

    @Override
    public void matmulNT(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, m, k, lda);
        Checks.matrix("B", b, bOff, n, k, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        // A[i, p] = a[i*lda + p], B^T[p, j] = b[j*ldb + p]
        naive(m, n, k, a, aOff, lda, 1, b, bOff, 1, ldb, c, cOff, ldc, accumulate);
    }

    @Override
    public void matmulNN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, m, k, lda);
        Checks.matrix("B", b, bOff, k, n, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        // A[i, p] = a[i*lda + p], B[p, j] = b[p*ldb + j]
        naive(m, n, k, a, aOff, lda, 1, b, bOff, ldb, 1, c, cOff, ldc, accumulate);
    }

    @Override
    public void matmulTN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, k, m, lda);
        Checks.matrix("B", b, bOff, k, n, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        // A^T[i, p] = a[p*lda + i], B[p, j] = b[p*ldb + j]
        naive(m, n, k, a, aOff, 1, lda, b, bOff, ldb, 1, c, cOff, ldc, accumulate);
    }

    /**
     * {@code C[i, j] (+)= sum_p A'[i, p] B'[p, j]} where {@code A'[i, p] = a[aOff + i*aRow + p*aDepth]} and
     * {@code B'[p, j] = b[bOff + p*bDepth + j*bCol]}.
     */
    private static void naive(int m, int n, int k, float[] a, int aOff, int aRow, int aDepth,
                              float[] b, int bOff, int bDepth, int bCol,
                              float[] c, int cOff, int ldc, boolean accumulate) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = accumulate ? c[cOff + i * ldc + j] : 0;
                for (int p = 0; p < k; p++) {
                    sum += (double) a[aOff + i * aRow + p * aDepth] * b[bOff + p * bDepth + j * bCol];
                }
                c[cOff + i * ldc + j] = (float) sum;
            }
        }
    }
}
