package org.qalora.quant.quantizer;

/**
 * The dense linear algebra GPTQ needs, in double: {@code U} upper triangular with {@code H^-1 = U^T U}, the
 * reference's {@code cholesky(cholesky_inverse(cholesky(H)), upper=True)}.
 */
final class CholeskyMath {
    private CholeskyMath() {}

    /** Returns U ({@code [n, n]} row-major, zeros below the diagonal); {@code h} is symmetric positive definite. */
    static double[] upperCholeskyOfInverse(double[] h, int n, String name) {
        double[] l = lowerCholesky(h, n, name);          // H = L L^T
        double[] linv = invertLower(l, n);               // L^-1
        double[] hinv = new double[n * n];               // H^-1 = L^-T L^-1
        for (int a = 0; a < n; a++) {
            for (int b = 0; b <= a; b++) {
                double s = 0;
                for (int k = a; k < n; k++) {            // linv[k, a] and linv[k, b] nonzero only for k >= max(a, b)
                    s += linv[k * n + a] * linv[k * n + b];
                }
                hinv[a * n + b] = s;
                hinv[b * n + a] = s;
            }
        }
        double[] lh = lowerCholesky(hinv, n, name);      // H^-1 = Lh Lh^T, so U = Lh^T
        double[] u = new double[n * n];
        for (int a = 0; a < n; a++) {
            for (int b = 0; b <= a; b++) {
                u[b * n + a] = lh[a * n + b];
            }
        }
        return u;
    }

    static double[] lowerCholesky(double[] a, int n, String name) {
        double[] l = new double[n * n];
        for (int j = 0; j < n; j++) {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++) {
                d -= l[j * n + k] * l[j * n + k];
            }
            if (!(d > 0)) {
                throw new IllegalStateException(name + ": the damped Hessian is not positive definite at column " + j
                        + "; use more calibration data or a larger damp_percent");
            }
            double djj = Math.sqrt(d);
            l[j * n + j] = djj;
            for (int i = j + 1; i < n; i++) {
                double s = a[i * n + j];
                for (int k = 0; k < j; k++) {
                    s -= l[i * n + k] * l[j * n + k];
                }
                l[i * n + j] = s / djj;
            }
        }
        return l;
    }

    /** Inverse of a lower-triangular matrix (also lower triangular), by forward substitution per column. */
    static double[] invertLower(double[] l, int n) {
        double[] inv = new double[n * n];
        for (int c = 0; c < n; c++) {
            inv[c * n + c] = 1 / l[c * n + c];
            for (int i = c + 1; i < n; i++) {
                double s = 0;
                for (int k = c; k < i; k++) {
                    s -= l[i * n + k] * inv[k * n + c];
                }
                inv[i * n + c] = s / l[i * n + i];
            }
        }
        return inv;
    }
}
