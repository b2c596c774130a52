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
        // H^-1 = L^-T L^-1 = sum over rows k of L^-1 of (row k)^T (row k): rank-1 updates on contiguous rows.
        // Row k of L^-1 is nonzero in columns 0..k only; we fill the lower triangle, then mirror it.
        double[] hinv = new double[n * n];
        for (int k = 0; k < n; k++) {
            int rk = k * n;
            for (int a = 0; a <= k; a++) {
                double va = linv[rk + a];
                if (va == 0) {
                    continue;
                }
                int ra = a * n;
                for (int b = 0; b <= a; b++) {
                    hinv[ra + b] += va * linv[rk + b];
                }
            }
        }
        for (int a = 0; a < n; a++) {
            for (int b = 0; b < a; b++) {
                hinv[b * n + a] = hinv[a * n + b];
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

    /**
     * Inverse of a lower-triangular matrix (also lower triangular), row by row: row i of the inverse is
     * {@code (e_i - sum_{k<i} l[i][k] * row k) / l[i][i]}, axpys over contiguous rows.
     */
    static double[] invertLower(double[] l, int n) {
        double[] inv = new double[n * n];
        for (int i = 0; i < n; i++) {
            int ri = i * n;
            for (int k = 0; k < i; k++) {
                double f = l[ri + k];
                if (f == 0) {
                    continue;
                }
                int rk = k * n;
                for (int c = 0; c <= k; c++) {
                    inv[ri + c] -= f * inv[rk + c];
                }
            }
            inv[ri + i] += 1;
            double d = l[ri + i];
            for (int c = 0; c <= i; c++) {
                inv[ri + c] /= d;
            }
        }
        return inv;
    }
}
