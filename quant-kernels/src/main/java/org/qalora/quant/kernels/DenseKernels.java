package org.qalora.quant.kernels;

/**
 * fp32 matrix products (lm_head, attention, adapters and their gradients). All matrices are row-major float
 * arrays with an offset and a leading dimension (the distance between consecutive rows, {@code >=} the row
 * length), so a head's slice of a {@code [T, H*D]} tensor can be used in place. With {@code accumulate} the
 * product is added to {@code C}, otherwise {@code C} is overwritten. Shapes below are the logical ones.
 *
 * <p>The short forms assume contiguous rows ({@code lda} = row length of A as stored, and so on).
 * Implementations: {@link ReferenceDenseKernels} (naive, the oracle) and {@link VectorDenseKernels} (Vector API
 * sgemm, threaded over a fixed partition of C, bit-identical across runs and thread counts).
 */
public interface DenseKernels {
    /** {@code C[m, n] (+)= A[m, k] · B[n, k]^T}: A stored {@code [m, k]} (lda), B stored {@code [n, k]} (ldb). */
    void matmulNT(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                  float[] c, int cOff, int ldc, boolean accumulate);

    /** {@code C[m, n] (+)= A[m, k] · B[k, n]}: A stored {@code [m, k]} (lda), B stored {@code [k, n]} (ldb). */
    void matmulNN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                  float[] c, int cOff, int ldc, boolean accumulate);

    /**
     * {@code C[m, n] (+)= A[k, m]^T · B[k, n]} (the weight gradient {@code dW = X^T dY}): A stored {@code [k, m]}
     * (lda), B stored {@code [k, n]} (ldb).
     */
    void matmulTN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                  float[] c, int cOff, int ldc, boolean accumulate);

    /** {@code C[m, n] (+)= A[m, k] · B[n, k]^T}, contiguous rows. */
    default void matmulNT(float[] a, int aOff, int m, int k, float[] b, int bOff, int n, float[] c, int cOff,
                          boolean accumulate) {
        matmulNT(m, n, k, a, aOff, k, b, bOff, k, c, cOff, n, accumulate);
    }

    /** {@code C[m, n] (+)= A[m, k] · B[k, n]}, contiguous rows. */
    default void matmulNN(float[] a, int aOff, int m, int k, float[] b, int bOff, int n, float[] c, int cOff,
                          boolean accumulate) {
        matmulNN(m, n, k, a, aOff, k, b, bOff, n, c, cOff, n, accumulate);
    }

    /** {@code C[m, n] (+)= A[k, m]^T · B[k, n]}, contiguous rows (A stored {@code [k, m]}). */
    default void matmulTN(float[] a, int aOff, int m, int k, float[] b, int bOff, int n, float[] c, int cOff,
                          boolean accumulate) {
        matmulTN(m, n, k, a, aOff, m, b, bOff, n, c, cOff, n, accumulate);
    }
}
