package org.qalora.quant.kernels;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * GPTQ's {@code O(n^3)} solve, {@code U} upper triangular with {@code H^-1 = U^T U}, blocked for the cache, on the
 * Vector API and the kernel pool, and <b>bit-identical</b> to the plain reference ({@code CholeskyMath} in the
 * quantizer package) for finite inputs, at every vector width and thread count.
 *
 * <p>Why it can be identical: every entry of the three stages (Cholesky, inverse of the factor, product of the
 * inverse with its transpose) is one chain {@code acc = acc - x*y} (or {@code + x*y}) over an index k. The
 * reference walks k in increasing order with a separate multiply and subtract (Java never fuses them); so does this
 * class, per entry: it only changes <em>which entries</em> are in flight together (a register tile of 4 rows x 2
 * vectors, k innermost) and <em>when</em> a chain is parked in memory between column panels, never the order of an
 * entry's own operations. Lanewise {@code mul}, {@code sub}, {@code add} and {@code div} round like the scalar
 * operators. The reference skips terms whose factor is exactly zero; adding {@code +-0} changes nothing either,
 * because an accumulator that starts at {@code +0} and only adds or subtracts products can never become {@code -0}.
 *
 * <p>Layouts, all {@code [n, n]} row-major: the Cholesky works on {@code U = L^T} so that the k-th row of the
 * factor is contiguous (the reference's column k of L); the inverse of L is stored lower triangular, whose row k is
 * contiguous for the same reason. Right-looking panels of {@link #PANEL} rows: the diagonal block of a panel is
 * factored alone, then the panel's rows right of it in column strips in parallel, then the trailing matrix, where
 * nearly all the work is, in parallel tiles. Memory: the input plus two {@code n x n} arrays (the reference holds
 * five).
 */
public final class BlockedCholesky {
    private static final VectorSpecies<Double> D = Simd.DOUBLE;
    private static final int L = D.length();
    /** Columns of one register tile: 2 vectors. */
    private static final int TW = 2 * L;
    /** Rows per panel: each trailing entry is loaded and stored once per panel. A multiple of every TW. */
    static final int PANEL = 64;
    /** Columns per parallel strip. */
    private static final int STRIP = 128;
    /** k per cache block of the inverse product (the streamed panel rows stay in L1/L2). */
    private static final int K_BLOCK = 256;

    private BlockedCholesky() {}

    /**
     * Returns U ({@code [n, n]} row-major, zeros below the diagonal) with {@code H^-1 = U^T U}, the reference's
     * {@code cholesky(cholesky_inverse(cholesky(H)), upper=True)}; reads only the lower triangle of {@code h}, which
     * is not modified.
     *
     * @param name the layer, for the error when {@code h} is not positive definite
     */
    public static double[] upperCholeskyOfInverse(double[] h, int n, String name, KernelPool pool) {
        double[] u = new double[n * n];
        lowerToUpper(h, u, n);
        factorUpper(u, n, name, pool);                    // H = U^T U, i.e. L = U^T
        double[] inv = new double[n * n];
        invertLower(u, inv, n, pool);                     // L^-1, lower
        java.util.Arrays.fill(u, 0);
        inverseProduct(inv, u, n, pool);                  // lower triangle of H^-1 = L^-T L^-1
        lowerToUpper(u, u, n);
        factorUpper(u, n, name, pool);                    // H^-1 = U^T U
        return u;
    }

    /** dst[j][i] = src[i][j] for i >= j, in 32 x 32 tiles; src may be dst (the lower triangle is only read). */
    private static void lowerToUpper(double[] src, double[] dst, int n) {
        for (int i0 = 0; i0 < n; i0 += 32) {
            for (int j0 = 0; j0 <= i0; j0 += 32) {
                for (int i = i0; i < Math.min(i0 + 32, n); i++) {
                    for (int j = j0; j < Math.min(j0 + 32, i + 1); j++) {
                        dst[j * n + i] = src[i * n + j];
                    }
                }
            }
        }
    }

    /**
     * In place: {@code u} holds A in its upper triangle, ends as U with zeros below. Entry (j, i), i >= j, is
     * {@code A[j][i] - sum_{k<j} U[k][j] U[k][i]} (k ascending), then divided by U[j][j] = sqrt of the diagonal's.
     */
    private static void factorUpper(double[] u, int n, String name, KernelPool pool) {
        for (int kb = 0; kb < n; kb += PANEL) {
            int ke = Math.min(kb + PANEL, n);
            factorDiagonalBlock(u, n, kb, ke, name);
            int strips = (n - ke + STRIP - 1) / STRIP;
            final int fkb = kb;
            pool.run(strips, t -> panelRows(u, n, fkb, ke, ke + t * STRIP, Math.min(ke + (t + 1) * STRIP, n)));
            // Trailing rows j >= ke: U[j][i] -= sum_{k in panel} U[k][j] U[k][i], one task per column strip.
            pool.run(strips, t -> {
                int c0 = ke + t * STRIP;
                int c1 = Math.min(c0 + STRIP, n);
                int j0 = ke;
                for (; j0 + 4 <= c1; j0 += 4) {
                    // Columns from the tile's first row, aligned to the strip so no column tail appears inside it;
                    // entries left of the diagonal come out as scratch, cleared at the end.
                    int c = c0 + (Math.max(j0, c0) - c0) / TW * TW;
                    for (; c + TW <= c1; c += TW) {
                        tile(u, u, u, n, j0, c, fkb, ke, -1);
                    }
                    edge(u, u, u, n, j0, 4, c, c1, fkb, ke, -1);
                }
                if (j0 < c1) {
                    edge(u, u, u, n, j0, c1 - j0, c0, c1, fkb, ke, -1);
                }
            });
        }
        for (int j = 1; j < n; j++) {
            java.util.Arrays.fill(u, j * n, j * n + j, 0);
        }
    }

    /** The panel's own columns [kb, ke), serially: the reference's order within the block. */
    private static void factorDiagonalBlock(double[] u, int n, int kb, int ke, String name) {
        for (int k = kb; k < ke; k++) {
            double d = u[k * n + k];
            if (!(d > 0)) {
                throw new IllegalStateException(name + ": the damped Hessian is not positive definite at column " + k
                        + "; use more calibration data or a larger damp_percent");
            }
            double dk = Math.sqrt(d);
            u[k * n + k] = dk;
            for (int i = k + 1; i < ke; i++) {
                u[k * n + i] /= dk;
            }
            for (int j = k + 1; j < ke; j++) {
                double f = u[k * n + j];
                for (int i = j; i < ke; i++) {
                    u[j * n + i] -= f * u[k * n + i];
                }
            }
        }
    }

    /** Panel rows [kb, ke) in columns [c0, c1) right of the diagonal block: divide row k, update the rows below it. */
    private static void panelRows(double[] u, int n, int kb, int ke, int c0, int c1) {
        for (int k = kb; k < ke; k++) {
            double dk = u[k * n + k];
            int rk = k * n;
            int c = c0;
            for (; c + L <= c1; c += L) {
                DoubleVector.fromArray(D, u, rk + c).div(dk).intoArray(u, rk + c);
            }
            for (; c < c1; c++) {
                u[rk + c] /= dk;
            }
            for (int j = k + 1; j < ke; j++) {
                axpy(u, j * n, -u[rk + j], u, rk, c0, c1);
            }
        }
    }

    /**
     * {@code inv = L^-1} (lower; {@code inv} zero on entry) with {@code L = U^T}. Entry (i, c), c < i, is
     * {@code (0 - sum_{k=c}^{i-1} L[i][k] inv[k][c]) / L[i][i]}; the diagonal is {@code 1 / L[i][i]}.
     */
    private static void invertLower(double[] u, double[] inv, int n, KernelPool pool) {
        for (int kb = 0; kb < n; kb += PANEL) {
            int ke = Math.min(kb + PANEL, n);
            final int fkb = kb;
            // The panel's rows, in column strips of [0, ke): row i takes rows kb..i-1, then is divided.
            pool.run((ke + STRIP - 1) / STRIP, t -> {
                int c0 = t * STRIP;
                int c1 = Math.min(c0 + STRIP, ke);
                for (int i = fkb; i < ke; i++) {
                    int ri = i * n;
                    for (int k = fkb; k < i; k++) {
                        axpy(inv, ri, -u[k * n + i], inv, k * n, c0, Math.min(c1, k + 1));
                    }
                    if (i >= c0 && i < c1) {
                        inv[ri + i] += 1;
                    }
                    double d = u[i * n + i];
                    int end = Math.min(c1, i + 1);
                    int c = c0;
                    for (; c + L <= end; c += L) {
                        DoubleVector.fromArray(D, inv, ri + c).div(d).intoArray(inv, ri + c);
                    }
                    for (; c < end; c++) {
                        inv[ri + c] /= d;
                    }
                }
            });
            // Trailing rows i >= ke, all columns c < ke (inv[k][c] is +0 for c > k, a harmless term).
            int rowBlocks = (n - ke + 15) / 16;
            pool.run(rowBlocks, t -> {
                int r0 = ke + t * 16;
                int r1 = Math.min(r0 + 16, n);
                for (int cc = 0; cc < ke; cc += 256) {
                    int ce = Math.min(cc + 256, ke);
                    int i0 = r0;
                    for (; i0 + 4 <= r1; i0 += 4) {
                        int c = cc;
                        for (; c + TW <= ce; c += TW) {
                            tile(inv, u, inv, n, i0, c, fkb, ke, -1);
                        }
                        edge(inv, u, inv, n, i0, 4, c, ce, fkb, ke, -1);
                    }
                    if (i0 < r1) {
                        edge(inv, u, inv, n, i0, r1 - i0, cc, ce, fkb, ke, -1);
                    }
                }
            });
        }
    }

    /**
     * The lower triangle of {@code L^-T L^-1} into {@code out} (zero on entry): entry (a, b), b <= a, is
     * {@code 0 + sum_{k>=a} inv[k][a] inv[k][b]}, k ascending. Entries right of the diagonal come out as scratch.
     */
    private static void inverseProduct(double[] inv, double[] out, int n, KernelPool pool) {
        int rowBlocks = (n + 15) / 16;
        pool.run(rowBlocks, t -> {
            int r0 = t * 16;
            int r1 = Math.min(r0 + 16, n);
            // k from r0 for every row of the block: for row a > r0 the terms k in [r0, a) have inv[k][a] = +0.
            for (int k0 = r0; k0 < n; k0 += K_BLOCK) {
                int k1 = Math.min(k0 + K_BLOCK, n);
                int a0 = r0;
                for (; a0 + 4 <= r1; a0 += 4) {
                    int ce = Math.min(n, (a0 + 4 + TW - 1) / TW * TW);
                    int c = 0;
                    for (; c + TW <= ce; c += TW) {
                        tile(out, inv, inv, n, a0, c, k0, k1, 1);
                    }
                    edge(out, inv, inv, n, a0, 4, c, ce, k0, k1, 1);
                }
                if (a0 < r1) {
                    edge(out, inv, inv, n, a0, r1 - a0, 0, Math.min(n, r1), k0, k1, 1);
                }
            }
        });
    }

    /**
     * The register tile: {@code c[r0+r][col..col+TW) += (sign * p[k][r0+r]) * q[k][col..col+TW)} for r < 4 and k
     * ascending in [k0, k1). With sign -1 that is the reference's {@code acc - x*y} exactly (negation is exact).
     */
    private static void tile(double[] c, double[] p, double[] q, int n, int r0, int col, int k0, int k1, double sign) {
        int c0 = r0 * n + col;
        DoubleVector a00 = DoubleVector.fromArray(D, c, c0);
        DoubleVector a01 = DoubleVector.fromArray(D, c, c0 + L);
        DoubleVector a10 = DoubleVector.fromArray(D, c, c0 + n);
        DoubleVector a11 = DoubleVector.fromArray(D, c, c0 + n + L);
        DoubleVector a20 = DoubleVector.fromArray(D, c, c0 + 2 * n);
        DoubleVector a21 = DoubleVector.fromArray(D, c, c0 + 2 * n + L);
        DoubleVector a30 = DoubleVector.fromArray(D, c, c0 + 3 * n);
        DoubleVector a31 = DoubleVector.fromArray(D, c, c0 + 3 * n + L);
        for (int k = k0; k < k1; k++) {
            int rk = k * n;
            DoubleVector q0 = DoubleVector.fromArray(D, q, rk + col);
            DoubleVector q1 = DoubleVector.fromArray(D, q, rk + col + L);
            double p0 = sign * p[rk + r0];
            double p1 = sign * p[rk + r0 + 1];
            double p2 = sign * p[rk + r0 + 2];
            double p3 = sign * p[rk + r0 + 3];
            a00 = a00.add(q0.mul(p0));
            a01 = a01.add(q1.mul(p0));
            a10 = a10.add(q0.mul(p1));
            a11 = a11.add(q1.mul(p1));
            a20 = a20.add(q0.mul(p2));
            a21 = a21.add(q1.mul(p2));
            a30 = a30.add(q0.mul(p3));
            a31 = a31.add(q1.mul(p3));
        }
        a00.intoArray(c, c0);
        a01.intoArray(c, c0 + L);
        a10.intoArray(c, c0 + n);
        a11.intoArray(c, c0 + n + L);
        a20.intoArray(c, c0 + 2 * n);
        a21.intoArray(c, c0 + 2 * n + L);
        a30.intoArray(c, c0 + 3 * n);
        a31.intoArray(c, c0 + 3 * n + L);
    }

    /** What {@link #tile} does, for {@code rows} rows and columns [col0, col1): the tails. k outer, so in order. */
    private static void edge(double[] c, double[] p, double[] q, int n, int r0, int rows, int col0, int col1,
                             int k0, int k1, double sign) {
        if (col0 >= col1) {
            return;
        }
        for (int k = k0; k < k1; k++) {
            int rk = k * n;
            for (int r = 0; r < rows; r++) {
                double pv = sign * p[rk + r0 + r];
                int rc = (r0 + r) * n;
                for (int j = col0; j < col1; j++) {
                    c[rc + j] += pv * q[rk + j];
                }
            }
        }
    }

    /** {@code y[yOff + c] += f * x[xOff + c]} for c in [c0, c1) ({@code f} negated by the caller for a subtraction). */
    private static void axpy(double[] y, int yOff, double f, double[] x, int xOff, int c0, int c1) {
        int c = c0;
        for (; c + L <= c1; c += L) {
            DoubleVector.fromArray(D, y, yOff + c).add(DoubleVector.fromArray(D, x, xOff + c).mul(f))
                    .intoArray(y, yOff + c);
        }
        for (; c < c1; c++) {
            y[yOff + c] += f * x[xOff + c];
        }
    }
}
