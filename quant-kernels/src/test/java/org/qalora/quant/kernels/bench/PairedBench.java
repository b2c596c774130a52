package org.qalora.quant.kernels.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.qalora.quant.kernels.KernelPool;
import org.qalora.quant.kernels.PreparedWeight;
import org.qalora.quant.kernels.VectorDenseKernels;
import org.qalora.quant.kernels.VectorQuantKernels;

/**
 * Interleaved timing for a shared machine, a companion to the JMH benchmarks: one JVM times the contenders in
 * turn (OpenBLAS sgemm, Vector API sgemm, fused int2/3/4/8; then GEMV int4 and a memory copy), round after
 * round, so that load from other processes falls on all of them alike. Prints the best and the median call of
 * each and the ratios. JMH runs each benchmark in its own fork minutes apart, which on a busy machine measures
 * the neighbours as much as the kernels. {@code bin/bench-kernels --paired [--threads N] [--rounds R]}.
 */
public final class PairedBench {
    private PairedBench() {}

    public static void main(String[] args) {
        int threads = Runtime.getRuntime().availableProcessors();
        int rounds = 15;
        for (int a = 0; a < args.length; a++) {
            switch (args[a]) {
                case "--threads" -> threads = Integer.parseInt(args[++a]);
                case "--rounds" -> rounds = Integer.parseInt(args[++a]);
                default -> throw new IllegalArgumentException("unknown argument " + args[a]
                        + ": use --threads N, --rounds R");
            }
        }
        int tokens = 512;
        int in = 4096;
        int out = 4096;
        try (KernelPool pool = new KernelPool(threads); Arena arena = Arena.ofShared()) {
            VectorQuantKernels quant = new VectorQuantKernels(pool);
            VectorDenseKernels dense = new VectorDenseKernels(pool);
            float[] x = BenchData.randomFloats(2, tokens * in); // [T, I]
            float[] w = BenchData.randomFloats(4, out * in); // [O, I]
            float[] y = new float[tokens * out]; // [T, O]
            Map<String, Runnable> gemm = new LinkedHashMap<>();
            OpenBlas blas = OpenBlas.load().orElse(null);
            if (blas != null) {
                blas.setThreads(threads);
                MemorySegment xs = arena.allocate((long) x.length * 4, 64).copyFrom(MemorySegment.ofArray(x));
                MemorySegment ws = arena.allocate((long) w.length * 4, 64).copyFrom(MemorySegment.ofArray(w));
                MemorySegment ys = arena.allocate((long) y.length * 4, 64);
                gemm.put("OpenBLAS sgemm (" + blas.corename() + ")", () -> blas.sgemmNT(tokens, out, in, xs, ws, ys));
            }
            gemm.put("Vector API sgemm", () -> dense.matmulNT(x, 0, tokens, in, w, 0, out, y, 0, false));
            for (int bits : new int[] {4, 2, 3, 8}) {
                PreparedWeight q = quant.prepare(BenchData.randomMatrix(bits, out, in, bits, 32));
                gemm.put("fused int" + bits + " g32 y=xW^T", () -> quant.matmul(q, x, 0, tokens, y, 0));
            }
            PreparedWeight up = quant.prepare(BenchData.randomMatrix(9, 11008, 4096, 4, 32));
            PreparedWeight[] ups = {up, quant.prepare(BenchData.randomMatrix(10, 11008, 4096, 4, 32)),
                    quant.prepare(BenchData.randomMatrix(11, 11008, 4096, 4, 32)),
                    quant.prepare(BenchData.randomMatrix(12, 11008, 4096, 4, 32))};
            float[] gx = BenchData.randomFloats(5, 4096);
            float[] gy = new float[11008];
            int[] next = {0};
            MemorySegment src = arena.allocate(CopyBench.COPY_BYTES, 4096).fill((byte) 1);
            MemorySegment dst = arena.allocate(CopyBench.COPY_BYTES, 4096).fill((byte) 0);
            int chunks = threads;
            Map<String, Runnable> memory = new LinkedHashMap<>();
            memory.put("gemv int4 g32 1x4096x11008", () -> quant.gemv(ups[next[0]++ % ups.length], gx, 0, gy, 0));
            memory.put("memory copy 128 MB", () -> pool.run(chunks, c -> MemorySegment.copy(src,
                    c * (CopyBench.COPY_BYTES / chunks), dst, c * (CopyBench.COPY_BYTES / chunks),
                    CopyBench.COPY_BYTES / chunks)));

            Map<String, double[]> gemmMs = time(gemm, rounds, 1);
            Map<String, double[]> memoryMs = time(memory, rounds, 20);
            double flop = 2.0 * tokens * in * out;
            List<String> lines = new ArrayList<>();
            lines.add(String.format(Locale.ROOT, "paired timing, %d threads, %d rounds; %d x %d x %d; median | best",
                    threads, rounds, tokens, in, out));
            double[] base = gemmMs.values().iterator().next();
            for (Map.Entry<String, double[]> e : gemmMs.entrySet()) {
                double[] t = e.getValue();
                lines.add(String.format(Locale.ROOT,
                        "  %-34s %7.1f | %7.1f ms %6.1f | %6.1f GFLOP/s  = %.2f | %.2fx %s",
                        e.getKey(), median(t), t[0], flop / median(t) / 1e6, flop / t[0] / 1e6,
                        median(base) / median(t), base[0] / t[0], blas != null ? "OpenBLAS" : "(no OpenBLAS)"));
            }
            double gemvBytes = GemvBench.weightBytes(4, 4096, 11008, 32);
            double[] gemv = memoryMs.get("gemv int4 g32 1x4096x11008");
            double[] copy = memoryMs.get("memory copy 128 MB");
            double copyMedian = 2.0 * CopyBench.COPY_BYTES / median(copy) / 1e6;
            double copyBest = 2.0 * CopyBench.COPY_BYTES / copy[0] / 1e6;
            lines.add(String.format(Locale.ROOT,
                    "  memory copy (read+written bytes)   %7.2f | %7.2f ms %6.1f | %6.1f GB/s",
                    median(copy), copy[0], copyMedian, copyBest));
            lines.add(String.format(Locale.ROOT,
                    "  gemv int4 g32 1x4096x11008        %7.3f | %7.3f ms %6.1f | %6.1f GB/s"
                    + " of weight bytes = %.2f | %.2fx copy", median(gemv), gemv[0], gemvBytes / median(gemv) / 1e6,
                    gemvBytes / gemv[0] / 1e6, gemvBytes / median(gemv) / 1e6 / copyMedian,
                    gemvBytes / gemv[0] / 1e6 / copyBest));
            System.out.println(String.join("\n", lines));
        }
    }

    /** Times each contender once per round, in turn, after warm-up; returns sorted times in ms. */
    private static Map<String, double[]> time(Map<String, Runnable> contenders, int rounds, int callsPerRound) {
        for (Runnable r : contenders.values()) { // warm-up: JIT and page faults
            for (int k = 0; k < 3 * callsPerRound + 2; k++) {
                r.run();
            }
        }
        Map<String, double[]> times = new LinkedHashMap<>();
        contenders.keySet().forEach(k -> times.put(k, new double[rounds * callsPerRound]));
        for (int round = 0; round < rounds; round++) {
            for (Map.Entry<String, Runnable> e : contenders.entrySet()) {
                for (int call = 0; call < callsPerRound; call++) {
                    long t0 = System.nanoTime();
                    e.getValue().run();
                    times.get(e.getKey())[round * callsPerRound + call] = (System.nanoTime() - t0) / 1e6;
                }
            }
        }
        times.values().forEach(Arrays::sort);
        return times;
    }

    private static double median(double[] sorted) {
        return sorted[sorted.length / 2];
    }
}
