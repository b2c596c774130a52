package org.qalora.quant.kernels.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Locale;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.GemvLookupExperiment;
import org.qalora.quant.kernels.KernelPool;
import org.qalora.quant.kernels.PreparedWeight;
import org.qalora.quant.kernels.VectorQuantKernels;

/**
 * Interleaved timing (for a shared machine) of the int4 GEMV 1 x 4096 x 11008, the lookup experiment and a
 * 128 MB memory copy, each over the same threads; prints the fraction of copy bandwidth (read + written bytes).
 * First checks the experiment against the kernel. {@code java ... GemvExperimentBench THREADS ROUNDS}.
 */
public final class GemvExperimentBench {
    private GemvExperimentBench() {}

    public static void main(String[] args) {
        int threads = Integer.parseInt(args[0]), rounds = Integer.parseInt(args[1]);
        long copyBytes = 128L << 20;
        try (KernelPool pool = new KernelPool(threads); Arena arena = Arena.ofShared()) {
            VectorQuantKernels quant = new VectorQuantKernels(pool);
            PreparedWeight[] ws = new PreparedWeight[4];
            for (int k = 0; k < ws.length; k++) {
                QuantizedMatrix m = BenchData.randomMatrix(9 + k, 11008, 4096, 4, 32);
                ws[k] = quant.prepare(m);
            }
            float[] x = BenchData.randomFloats(5, 4096);
            float[] y1 = new float[11008], y2 = new float[11008];
            quant.gemv(ws[0], x, 0, y1, 0);
            GemvLookupExperiment.gemv(pool, ws[0], x, y2);
            double maxDiff = 0, maxAbs = 0;
            for (int i = 0; i < y1.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(y1[i] - y2[i]));
                maxAbs = Math.max(maxAbs, Math.abs(y1[i]));
            }
            System.out.printf(Locale.ROOT, "experiment vs kernel: max |diff| %.3g of max |y| %.3g%n", maxDiff, maxAbs);
            MemorySegment src = arena.allocate(copyBytes, 4096).fill((byte) 1);
            MemorySegment dst = arena.allocate(copyBytes, 4096).fill((byte) 0);
            int[] next = {0};
            Runnable kernel = () -> quant.gemv(ws[next[0]++ % 4], x, 0, y1, 0);
            Runnable lookup = () -> GemvLookupExperiment.gemv(pool, ws[next[0]++ % 4], x, y2);
            Runnable copy = () -> pool.run(threads, c -> MemorySegment.copy(src, c * (copyBytes / threads), dst,
                    c * (copyBytes / threads), copyBytes / threads));
            Runnable[] all = {kernel, lookup, copy};
            for (Runnable r : all) {
                for (int i = 0; i < 200; i++) {
                    r.run();
                }
            }
            double[][] t = new double[3][rounds * 10];
            for (int round = 0; round < rounds; round++) {
                for (int c = 0; c < 3; c++) {
                    for (int k = 0; k < 10; k++) {
                        long t0 = System.nanoTime();
                        all[c].run();
                        t[c][round * 10 + k] = (System.nanoTime() - t0) / 1e6;
                    }
                }
            }
            double bytes = 4096.0 * 11008 / 2 + 2.0 * 128 * 11008 * 4;
            for (double[] a : t) {
                Arrays.sort(a);
            }
            double copyMed = 2.0 * copyBytes / t[2][t[2].length / 2] / 1e6, copyBest = 2.0 * copyBytes / t[2][0] / 1e6;
            System.out.printf(Locale.ROOT, "%d threads, %d calls each; median | best%n", threads, rounds * 10);
            System.out.printf(Locale.ROOT, "  copy 128 MB (read+written)  %7.3f | %7.3f ms  %5.1f | %5.1f GB/s%n",
                    t[2][t[2].length / 2], t[2][0], copyMed, copyBest);
            String[] names = {"gemv int4 (and+convert)", "gemv int4 (lookup)"};
            for (int c = 0; c < 2; c++) {
                double med = t[c][t[c].length / 2], best = t[c][0];
                System.out.printf(Locale.ROOT, "  %-28s %7.3f | %7.3f ms  %5.1f | %5.1f GB/s = %.2f | %.2f x copy%n",
                        names[c], med, best, bytes / med / 1e6, bytes / best / 1e6, bytes / med / 1e6 / copyMed,
                        bytes / best / 1e6 / copyBest);
            }
        }
    }
}
