package org.qalora.quant.kernels;

/**
 * The naive oracle for {@link DenseKernels}: one output element at a time, the dot product summed in double.
 * Slow by design; tests compare the fast kernels against it.
 */
public final class ReferenceDenseKernels implements DenseKernels {

    @Override
    public void matmulNT(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, m, k, lda);
        Checks.matrix("B", b, bOff, n, k, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = accumulate ? c[cOff + i * ldc + j] : 0;
                for (int p = 0; p < k; p++) {
                    sum += (double) a[aOff + i * lda + p] * b[bOff + j * ldb + p];
                }
                c[cOff + i * ldc + j] = (float) sum;
            }
        }
    }

    @Override
    public void matmulNN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, m, k, lda);
        Checks.matrix("B", b, bOff, k, n, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = accumulate ? c[cOff + i * ldc + j] : 0;
                for (int p = 0; p < k; p++) {
                    sum += (double) a[aOff + i * lda + p] * b[bOff + p * ldb + j];
                }
                c[cOff + i * ldc + j] = (float) sum;
            }
        }
    }

    @Override
    public void matmulTN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, k, m, lda);
        Checks.matrix("B", b, bOff, k, n, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = accumulate ? c[cOff + i * ldc + j] : 0;
                for (int p = 0; p < k; p++) {
                    sum += (double) a[aOff + p * lda + i] * b[bOff + p * ldb + j];
                }
                c[cOff + i * ldc + j] = (float) sum;
            }
        }
    }
}
