package org.qalora.worker.backend;

/**
 * Plain triple-loop fp32 matrix products, row-partitioned. Only a stand-in until the quant-kernels
 * {@code DenseKernels} land; also the reference the backend tests compare against.
 */
final class NaiveMatmul {
    private NaiveMatmul() {}

    /** c[M,N] (+)= a[M,K] b[N,K]^T */
    static void nt(FixedPartition par, float[] a, float[] b, float[] c, int m, int n, int k, boolean acc) {
        par.forEach(m, i -> {
            for (int j = 0; j < n; j++) {
                float sum = 0f;
                for (int p = 0; p < k; p++) {
                    sum += a[i * k + p] * b[j * k + p];
                }
                c[i * n + j] = acc ? c[i * n + j] + sum : sum;
            }
        });
    }

    /** c[M,N] (+)= a[M,K] b[K,N] */
    static void nn(FixedPartition par, float[] a, float[] b, float[] c, int m, int n, int k, boolean acc) {
        par.forEach(m, i -> {
            float[] row = new float[n];
            for (int p = 0; p < k; p++) {
                float av = a[i * k + p];
                for (int j = 0; j < n; j++) {
                    row[j] += av * b[p * n + j];
                }
            }
            for (int j = 0; j < n; j++) {
                c[i * n + j] = acc ? c[i * n + j] + row[j] : row[j];
            }
        });
    }

    /** c[M,N] (+)= a[K,M]^T b[K,N] */
    static void tn(FixedPartition par, float[] a, float[] b, float[] c, int m, int n, int k, boolean acc) {
        par.forEach(m, i -> {
            float[] row = new float[n];
            for (int p = 0; p < k; p++) {
                float av = a[p * m + i];
                if (av == 0f) {
                    continue;
                }
                for (int j = 0; j < n; j++) {
                    row[j] += av * b[p * n + j];
                }
            }
            for (int j = 0; j < n; j++) {
                c[i * n + j] = acc ? c[i * n + j] + row[j] : row[j];
            }
        });
    }
}
