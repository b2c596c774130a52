package org.qalora.quant.kernels.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Locale;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.GemvLookupExperiment;
import org.qalora.quant.kernels.KernelPool;
import org.qalora.quant.kernels.PreparedWeight;
import org.qalora.quant.kernels.VectorQuantKernels;

/**
 * Interleaved timing (for a shared machine) of the int4 GEMV (1 x 4096 x 11008 by default), the lookup experiment, the
 * int8-activation GEMV ({@code gemvInt8Activations}), a plain read of as many bytes as one GEMV reads (vector
 * sum over one of 4 arrays: the most a read-only kernel could hope for) and a 128 MB memory copy, each over the
 * same threads, in turn, 10 calls each per round; prints the fraction of copy bandwidth (read + written bytes).
 * First checks the contenders against the kernel. {@code java ... GemvExperimentBench THREADS ROUNDS [OUT IN
 * WEIGHTS]}: by default 11008 x 4096 cycling through 4 weights (135 MB, so W comes from DRAM as in a real decode);
 * {@code 512 4096 1} keeps one 1.5 MB weight in the two cores' L2 caches, which times the arithmetic alone.
 */
public final class GemvExperimentBench {
    private GemvExperimentBench() {}

    public static void main(String[] args) {
        int threads = Integer.parseInt(args[0]), rounds = Integer.parseInt(args[1]);
        int out = args.length > 2 ? Integer.parseInt(args[2]) : 11008;
        int in = args.length > 3 ? Integer.parseInt(args[3]) : 4096;
        int weights = args.length > 4 ? Integer.parseInt(args[4]) : 4;
        long copyBytes = 128L << 20;
        try (KernelPool pool = new KernelPool(threads); Arena arena = Arena.ofShared()) {
            VectorQuantKernels quant = new VectorQuantKernels(pool);
            PreparedWeight[] ws = new PreparedWeight[weights];
            for (int k = 0; k < ws.length; k++) {
                QuantizedMatrix m = BenchData.randomMatrix(9 + k, out, in, 4, 32);
                ws[k] = quant.prepare(m);
            }
            float[] x = BenchData.randomFloats(5, in);
            float[] y1 = new float[out], y2 = new float[out], y3 = new float[out];
            quant.gemv(ws[0], x, 0, y1, 0);
            GemvLookupExperiment.gemv(pool, ws[0], x, y2);
            quant.gemvInt8Activations(ws[0], x, 0, y3, 0);
            System.out.printf(Locale.ROOT, "vs kernel: lookup %s; int8 activations %s%n", diff(y1, y2), diff(y1, y3));
            MemorySegment src = arena.allocate(copyBytes, 4096).fill((byte) 1);
            MemorySegment dst = arena.allocate(copyBytes, 4096).fill((byte) 0);
            int[] next = {0};
            Runnable kernel = () -> quant.gemv(ws[next[0]++ % weights], x, 0, y1, 0);
            Runnable lookup = () -> GemvLookupExperiment.gemv(pool, ws[next[0]++ % weights], x, y2);
            Runnable copy = () -> pool.run(threads, c -> MemorySegment.copy(src, c * (copyBytes / threads), dst,
                    c * (copyBytes / threads), copyBytes / threads));
            Runnable int8 = () -> quant.gemvInt8Activations(ws[next[0]++ % weights], x, 0, y3, 0);
            int readInts = (int) (gemvBytes(out, in) / 4) / (threads * 64) * (threads * 64);
            int[][] readArrays = new int[weights][readInts];
            for (int[] a : readArrays) {
                Arrays.fill(a, 1);
            }
            int[] sink = new int[threads * 16];
            Runnable read = () -> {
                int[] a = readArrays[next[0]++ % weights];
                pool.run(threads, c -> sink[c * 16] += sum(a, c * (readInts / threads), (c + 1) * (readInts / threads)));
            };
            Runnable[] all = {kernel, lookup, int8, read, copy};
            for (Runnable r : all) {
                for (int i = 0; i < 200; i++) {
                    r.run();
                }
            }
            double[][] t = new double[all.length][rounds * 10];
            for (int round = 0; round < rounds; round++) {
                for (int c = 0; c < all.length; c++) {
                    for (int k = 0; k < 10; k++) {
                        long t0 = System.nanoTime();
                        all[c].run();
                        t[c][round * 10 + k] = (System.nanoTime() - t0) / 1e6;
                    }
                }
            }
            double bytes = gemvBytes(out, in);
            for (double[] a : t) {
                Arrays.sort(a);
            }
            double[] tc = t[all.length - 1];
            double copyMed = 2.0 * copyBytes / tc[tc.length / 2] / 1e6, copyBest = 2.0 * copyBytes / tc[0] / 1e6;
            System.out.printf(Locale.ROOT, "1 x %d x %d int4 g32, %d weights (%.1f MB), %d threads, %d calls each;"
                    + " median | best%n", in, out, weights, weights * bytes / 1e6, threads, rounds * 10);
            System.out.printf(Locale.ROOT, "  copy 128 MB (read+written)  %7.3f | %7.3f ms  %5.1f | %5.1f GB/s%n",
                    tc[tc.length / 2], tc[0], copyMed, copyBest);
            String[] names = {"gemv int4 (and+convert)", "gemv int4 (lookup)", "gemv int4 x int8 activations",
                "read as many bytes (sum)"};
            for (int c = 0; c < names.length; c++) {
                double med = t[c][t[c].length / 2], best = t[c][0];
                System.out.printf(Locale.ROOT, "  %-28s %7.3f | %7.3f ms  %5.1f | %5.1f GB/s = %.2f | %.2f x copy%n",
                        names[c], med, best, bytes / med / 1e6, bytes / best / 1e6, bytes / med / 1e6 / copyMed,
                        bytes / best / 1e6 / copyBest);
            }
        }
    }

    /** Bytes one int4 g32 GEMV reads: codes, fp32 scales and zeros. */
    private static double gemvBytes(int out, int in) {
        return in * (double) out / 2 + 2.0 * (in / 32) * out * 4;
    }

    /** A sum over {@code a[from, to)}, four 512-bit-or-narrower vectors per step: a read at full speed. */
    private static int sum(int[] a, int from, int to) {
        VectorSpecies<Integer> species = IntVector.SPECIES_PREFERRED;
        IntVector s0 = IntVector.zero(species), s1 = s0, s2 = s0, s3 = s0;
        int step = 4 * species.length();
        for (int i = from; i + step <= to; i += step) {
            s0 = s0.add(IntVector.fromArray(species, a, i));
            s1 = s1.add(IntVector.fromArray(species, a, i + species.length()));
            s2 = s2.add(IntVector.fromArray(species, a, i + 2 * species.length()));
            s3 = s3.add(IntVector.fromArray(species, a, i + 3 * species.length()));
        }
        return s0.add(s1).add(s2).add(s3).reduceLanes(VectorOperators.ADD);
    }

    /** The largest |a - b| and the largest |a|, a sanity check before the timing. */
    private static String diff(float[] a, float[] b) {
        double maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < a.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
            maxAbs = Math.max(maxAbs, Math.abs(a[i]));
        }
        return String.format(Locale.ROOT, "max |diff| %.3g of max |y| %.3g", maxDiff, maxAbs);
    }
}
