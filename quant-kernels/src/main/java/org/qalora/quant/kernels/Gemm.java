package org.qalora.quant.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The blocked single-precision GEMM core shared by the dense and the quantized kernels:
 * {@code C[m, n] (+)= A'[m, k] · B'[k, n]}, where A' arrives packed by {@link #packRowMajorA} or
 * {@link #packTransposedA} and B' is produced block by block by a {@link BPacker} (a copy, a transpose, or a
 * dequantization of low-bit codes: the fused kernels dequantize a tile of W once and reuse it for every token).
 *
 * <p>Goto/BLIS structure: A is packed once into row panels {@code [m/MR][k][MR]}; each task owns a block of
 * {@code nc} columns (and a range of row panels), packs B' for one {@link #KC}-deep slice into micro-panels
 * {@code [nc/NB][KC][NB]} that stay in L1, and runs the {@code MR x NB} register-tiled micro-kernel over its
 * rows. Every element of C is summed in the same order (k ascending, in slices of KC, each slice added to C)
 * whatever the task split, so results do not depend on the thread count.
 */
final class Gemm {
    private Gemm() {}

    private static final VectorSpecies<Float> S = Simd.FLOAT;
    static final int L = Simd.LANES;
    /** Rows of a micro-tile (tokens): each k step broadcasts MR values of A. */
    static final int MR = 6;
    /** Vectors per micro-tile row: MR x NR accumulators (12) plus NR + 1 operands fit 16 registers (AVX2). */
    static final int NR = 2;
    /** Columns of a micro-tile. */
    static final int NB = NR * L;
    /** Depth of one k slice: a B micro-panel [KC, NB] is 32 KB at 512-bit, 16 KB at 256-bit: L1-resident. */
    static final int KC = 256;
    /** Below this many multiply-adds a call runs on the calling thread: fan-out would cost more than it saves. */
    static final long PARALLEL_MIN_MACS = 1L << 18;

    /** Produces {@code B'[k0 .. k0+kc, j0 .. j0+nc)} as micro-panels {@code [ceil(nc/NB)][kc][NB]}, zero past nc. */
    interface BPacker {
        void pack(int k0, int kc, int j0, int nc, float[] dst);
    }

    private static final ThreadLocal<float[]> A_PACK = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> B_PACK = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> EDGE = ThreadLocal.withInitial(() -> new float[MR * NB]);

    static int panels(int m) {
        return (m + MR - 1) / MR;
    }

    /** A per-thread scratch array of at least {@code size} floats (contents undefined). */
    private static float[] scratch(ThreadLocal<float[]> slot, int size) {
        float[] buffer = slot.get();
        if (buffer.length < size) {
            buffer = new float[size];
            slot.set(buffer);
        }
        return buffer;
    }

    /** Packs row-major {@code A[m, k]} (leading dimension lda) into {@code [panels][k][MR]}, zero rows past m. */
    static float[] packRowMajorA(KernelPool pool, float[] a, int aOff, int lda, int m, int k) {
        float[] ap = scratch(A_PACK, panels(m) * k * MR);
        runTasks(pool, (long) m * k, panels(m), panel -> {
            int base = panel * k * MR;
            for (int r = 0; r < MR; r++) {
                int row = panel * MR + r;
                if (row < m) {
                    int src = aOff + row * lda;
                    for (int p = 0; p < k; p++) {
                        ap[base + p * MR + r] = a[src + p];
                    }
                } else {
                    for (int p = 0; p < k; p++) {
                        ap[base + p * MR + r] = 0f;
                    }
                }
            }
        });
        return ap;
    }

    /** Packs {@code A'[m, k]} given as its transpose, stored {@code [k, m]} (leading dimension lda). */
    static float[] packTransposedA(KernelPool pool, float[] a, int aOff, int lda, int m, int k) {
        float[] ap = scratch(A_PACK, panels(m) * k * MR);
        runTasks(pool, (long) m * k, panels(m), panel -> {
            int base = panel * k * MR;
            int rows = Math.min(MR, m - panel * MR);
            for (int p = 0; p < k; p++) {
                int src = aOff + p * lda + panel * MR;
                int dst = base + p * MR;
                for (int r = 0; r < rows; r++) {
                    ap[dst + r] = a[src + r];
                }
                for (int r = rows; r < MR; r++) {
                    ap[dst + r] = 0f;
                }
            }
        });
        return ap;
    }

    private static void runTasks(KernelPool pool, long work, int tasks, java.util.function.IntConsumer task) {
        if (work < PARALLEL_MIN_MACS) {
            for (int t = 0; t < tasks; t++) {
                task.accept(t);
            }
        } else {
            pool.run(tasks, task);
        }
    }

    /**
     * {@code C[m, n] (+)= A'·B'} with A' packed in {@code ap}. Tasks are column blocks of {@code nc} (a multiple of
     * NB) times row ranges of {@code panelsPerTask} panels.
     */
    static void multiply(KernelPool pool, int m, int n, int k, float[] ap, BPacker bPacker, int nc, int panelsPerTask,
                         float[] c, int cOff, int ldc, boolean accumulate) {
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                for (int i = 0; i < m; i++) {
                    java.util.Arrays.fill(c, cOff + i * ldc, cOff + i * ldc + n, 0f);
                }
            }
            return;
        }
        int panels = panels(m);
        int colBlocks = (n + nc - 1) / nc;
        int rowBlocks = (panels + panelsPerTask - 1) / panelsPerTask;
        runTasks(pool, (long) m * n * k, colBlocks * rowBlocks, task -> {
            int j0 = (task % colBlocks) * nc;
            int cols = Math.min(nc, n - j0);
            int p0 = (task / colBlocks) * panelsPerTask;
            int p1 = Math.min(panels, p0 + panelsPerTask);
            float[] bp = scratch(B_PACK, nc * KC);
            float[] edge = EDGE.get();
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                bPacker.pack(pc, kc, j0, cols, bp);
                boolean add = accumulate || pc > 0;
                for (int sub = 0; sub * NB < cols; sub++) {
                    int subCols = Math.min(NB, cols - sub * NB);
                    for (int panel = p0; panel < p1; panel++) {
                        int rows = Math.min(MR, m - panel * MR);
                        microKernel(ap, (panel * k + pc) * MR, bp, sub * kc * NB, kc,
                                c, cOff + panel * MR * ldc + j0 + sub * NB, ldc, add, rows, subCols, edge);
                    }
                }
            }
        });
    }

    /**
     * One {@code MR x NB} tile of C over a kc-deep slice: 12 vector accumulators, each k step loads NR vectors of
     * B and broadcasts MR values of A. A partial tile (rows < MR or cols < NB) is computed identically into
     * {@code edge} and copied out, so edge elements are summed exactly like interior ones.
     */
    static void microKernel(float[] ap, int aOff, float[] bp, int bOff, int kc, float[] c, int cOff, int ldc,
                            boolean add, int rows, int cols, float[] edge) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        FloatVector c40 = FloatVector.zero(S), c41 = FloatVector.zero(S);
        FloatVector c50 = FloatVector.zero(S), c51 = FloatVector.zero(S);
        for (int p = 0; p < kc; p++) {
            int bi = bOff + p * NB;
            int ai = aOff + p * MR;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector a = FloatVector.broadcast(S, ap[ai]);
            c00 = a.fma(b0, c00);
            c01 = a.fma(b1, c01);
            a = FloatVector.broadcast(S, ap[ai + 1]);
            c10 = a.fma(b0, c10);
            c11 = a.fma(b1, c11);
            a = FloatVector.broadcast(S, ap[ai + 2]);
            c20 = a.fma(b0, c20);
            c21 = a.fma(b1, c21);
            a = FloatVector.broadcast(S, ap[ai + 3]);
            c30 = a.fma(b0, c30);
            c31 = a.fma(b1, c31);
            a = FloatVector.broadcast(S, ap[ai + 4]);
            c40 = a.fma(b0, c40);
            c41 = a.fma(b1, c41);
            a = FloatVector.broadcast(S, ap[ai + 5]);
            c50 = a.fma(b0, c50);
            c51 = a.fma(b1, c51);
        }
        // Stores written out (a helper taking vectors would box them whenever C2 declines to inline it).
        boolean full = rows == MR && cols == NB;
        float[] out = full ? c : edge;
        int o0 = full ? cOff : 0;
        int ld = full ? ldc : NB;
        if (full && add) {
            c00 = c00.add(FloatVector.fromArray(S, out, o0));
            c01 = c01.add(FloatVector.fromArray(S, out, o0 + L));
            c10 = c10.add(FloatVector.fromArray(S, out, o0 + ld));
            c11 = c11.add(FloatVector.fromArray(S, out, o0 + ld + L));
            c20 = c20.add(FloatVector.fromArray(S, out, o0 + 2 * ld));
            c21 = c21.add(FloatVector.fromArray(S, out, o0 + 2 * ld + L));
            c30 = c30.add(FloatVector.fromArray(S, out, o0 + 3 * ld));
            c31 = c31.add(FloatVector.fromArray(S, out, o0 + 3 * ld + L));
            c40 = c40.add(FloatVector.fromArray(S, out, o0 + 4 * ld));
            c41 = c41.add(FloatVector.fromArray(S, out, o0 + 4 * ld + L));
            c50 = c50.add(FloatVector.fromArray(S, out, o0 + 5 * ld));
            c51 = c51.add(FloatVector.fromArray(S, out, o0 + 5 * ld + L));
        }
        c00.intoArray(out, o0);
        c01.intoArray(out, o0 + L);
        c10.intoArray(out, o0 + ld);
        c11.intoArray(out, o0 + ld + L);
        c20.intoArray(out, o0 + 2 * ld);
        c21.intoArray(out, o0 + 2 * ld + L);
        c30.intoArray(out, o0 + 3 * ld);
        c31.intoArray(out, o0 + 3 * ld + L);
        c40.intoArray(out, o0 + 4 * ld);
        c41.intoArray(out, o0 + 4 * ld + L);
        c50.intoArray(out, o0 + 5 * ld);
        c51.intoArray(out, o0 + 5 * ld + L);
        if (!full) {
            for (int r = 0; r < rows; r++) {
                int dst = cOff + r * ldc;
                for (int j = 0; j < cols; j++) {
                    c[dst + j] = add ? c[dst + j] + edge[r * NB + j] : edge[r * NB + j];
                }
            }
        }
    }
}
