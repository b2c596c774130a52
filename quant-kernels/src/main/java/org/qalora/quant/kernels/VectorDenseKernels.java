package org.qalora.quant.kernels;

import java.util.Arrays;

/**
 * Vector API sgemm ({@link Gemm}): A packed once into row panels, B packed per task into L1-sized micro-panels,
 * a 6 x 2-vector register-tiled FMA micro-kernel. Threaded over a fixed partition of C on a {@link KernelPool};
 * results are bit-identical across runs and thread counts (not across vector widths).
 */
public final class VectorDenseKernels implements DenseKernels {
    /** Columns of C per task. */
    private static final int NC = 64;

    private final KernelPool pool;

    /** On the process-wide {@link KernelPool#shared()} pool. */
    public VectorDenseKernels() {
        this(KernelPool.shared());
    }

    public VectorDenseKernels(KernelPool pool) {
        this.pool = pool;
    }

    @Override
    public void matmulNT(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, m, k, lda);
        Checks.matrix("B", b, bOff, n, k, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        float[] ap = Gemm.packRowMajorA(pool, a, aOff, lda, m, k);
        Gemm.multiply(pool, m, n, k, ap, (k0, kc, j0, nc, dst) -> packTransposedB(b, bOff, ldb, k0, kc, j0, nc, dst),
                NC, panelsPerTask(m, n), c, cOff, ldc, accumulate);
    }

    @Override
    public void matmulNN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, m, k, lda);
        Checks.matrix("B", b, bOff, k, n, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        float[] ap = Gemm.packRowMajorA(pool, a, aOff, lda, m, k);
        Gemm.multiply(pool, m, n, k, ap, (k0, kc, j0, nc, dst) -> packRowMajorB(b, bOff, ldb, k0, kc, j0, nc, dst),
                NC, panelsPerTask(m, n), c, cOff, ldc, accumulate);
    }

    @Override
    public void matmulTN(int m, int n, int k, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        Checks.matrix("A", a, aOff, k, m, lda);
        Checks.matrix("B", b, bOff, k, n, ldb);
        Checks.matrix("C", c, cOff, m, n, ldc);
        float[] ap = Gemm.packTransposedA(pool, a, aOff, lda, m, k);
        Gemm.multiply(pool, m, n, k, ap, (k0, kc, j0, nc, dst) -> packRowMajorB(b, bOff, ldb, k0, kc, j0, nc, dst),
                NC, panelsPerTask(m, n), c, cOff, ldc, accumulate);
    }

    /**
     * Row panels per task: all of them while there are enough column blocks to keep every thread busy; otherwise
     * (few columns, e.g. an adapter of rank 16) rows are split too, so that there are about four tasks per thread.
     */
    private int panelsPerTask(int m, int n) {
        int panels = Gemm.panels(m);
        int colBlocks = (n + NC - 1) / NC;
        int wantedRowBlocks = Math.max(1, (4 * pool.threads() + colBlocks - 1) / colBlocks);
        // At least 8 panels (48 rows) per task, so re-packing B per row block stays cheap.
        return Math.max(8, (panels + wantedRowBlocks - 1) / wantedRowBlocks);
    }

    /** B' = B stored [k, n]: each micro-panel row is a contiguous slice of a row of B. */
    private static void packRowMajorB(float[] b, int bOff, int ldb, int k0, int kc, int j0, int nc, float[] dst) {
        int nb = Gemm.NB;
        for (int sub = 0; sub * nb < nc; sub++) {
            int cols = Math.min(nb, nc - sub * nb);
            int panel = sub * kc * nb;
            for (int p = 0; p < kc; p++) {
                int src = bOff + (k0 + p) * ldb + j0 + sub * nb;
                System.arraycopy(b, src, dst, panel + p * nb, cols);
                if (cols < nb) {
                    Arrays.fill(dst, panel + p * nb + cols, panel + (p + 1) * nb, 0f);
                }
            }
        }
    }

    /** B' = B^T with B stored [n, k]: reads rows of B contiguously, writes columns of the micro-panel. */
    private static void packTransposedB(float[] b, int bOff, int ldb, int k0, int kc, int j0, int nc, float[] dst) {
        int nb = Gemm.NB;
        for (int sub = 0; sub * nb < nc; sub++) {
            int cols = Math.min(nb, nc - sub * nb);
            int panel = sub * kc * nb;
            for (int j = 0; j < cols; j++) {
                int src = bOff + (j0 + sub * nb + j) * ldb + k0;
                for (int p = 0; p < kc; p++) {
                    dst[panel + p * nb + j] = b[src + p];
                }
            }
            for (int j = cols; j < nb; j++) {
                for (int p = 0; p < kc; p++) {
                    dst[panel + p * nb + j] = 0f;
                }
            }
        }
    }
}
