package org.qalora.quant.kernels;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API sgemm ({@link Gemm}): A packed once into row panels, B packed per task into L1-sized micro-panels,
 * a 6 x 2-vector register-tiled FMA micro-kernel. Threaded over a fixed partition of C on a {@link KernelPool};
 * results are bit-identical across runs and thread counts (not across vector widths).
 */
public final class VectorDenseKernels implements DenseKernels {
    /** Columns of C per task. */
    private static final int NC = 64;
    /**
     * Below this many rows of A, {@code A B^T} is a loop of dot products over rows of B as stored: packing B into
     * micro-panels (reading and writing all of it) and running a 6-row micro-kernel for one useful row is what made
     * a one-token lm_head cost several times its memory traffic.
     */
    static final int GEMV_MAX_ROWS = 3;
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final int L = Simd.LANES;
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[Simd.LANES]);

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
        if (m <= GEMV_MAX_ROWS) {
            if ((long) m * n * k < Gemm.PARALLEL_MIN_MACS) {
                dotRows(m, 0, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc, accumulate);
            } else {
                int tasks = (n + NC - 1) / NC;
                pool.run(tasks, t -> dotRows(m, t * NC, Math.min(n, (t + 1) * NC), k, a, aOff, lda, b, bOff, ldb, c,
                        cOff, ldc, accumulate));
            }
            return;
        }
        float[] ap = Gemm.packRowMajorA(pool, a, aOff, lda, m, k);
        Gemm.multiply(pool, m, n, k, ap, (k0, kc, j0, nc, dst) -> packTransposedB(b, bOff, ldb, k0, kc, j0, nc, dst),
                NC, panelsPerTask(m, n), c, cOff, ldc, accumulate);
    }

    /**
     * {@code C[i, j] (+)= A[i, :] . B[j, :]} for columns {@code [j0, j1)}: two accumulator vectors along k (FMA
     * latency), then the lanes summed in a fixed scalar order. No {@code reduceLanes}: its float order differs
     * between the compiled intrinsic and the interpreter, and results must not depend on JIT warm-up.
     */
    private static void dotRows(int m, int j0, int j1, int k, float[] a, int aOff, int lda, float[] b, int bOff,
                                int ldb, float[] c, int cOff, int ldc, boolean accumulate) {
        float[] lanes = LANES.get();
        int kv = k - k % (2 * L);
        for (int i = 0; i < m; i++) {
            int ai = aOff + i * lda;
            for (int j = j0; j < j1; j++) {
                int bj = bOff + j * ldb;
                FloatVector s0 = FloatVector.zero(F), s1 = FloatVector.zero(F);
                int p = 0;
                for (; p < kv; p += 2 * L) {
                    s0 = FloatVector.fromArray(F, a, ai + p).fma(FloatVector.fromArray(F, b, bj + p), s0);
                    s1 = FloatVector.fromArray(F, a, ai + p + L).fma(FloatVector.fromArray(F, b, bj + p + L), s1);
                }
                s0.add(s1).intoArray(lanes, 0);
                float dot = 0f;
                for (int l = 0; l < L; l++) {
                    dot += lanes[l];
                }
                for (; p < k; p++) {
                    dot += a[ai + p] * b[bj + p];
                }
                int o = cOff + i * ldc + j;
                c[o] = accumulate ? c[o] + dot : dot;
            }
        }
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
