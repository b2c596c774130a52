package org.qalora.quant.kernels.bench;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * Runs the kernel benchmarks with JMH and prints the figures docs/PERFORMANCE.md reports: GFLOP/s of the fused
 * low-bit multiply and its ratio to OpenBLAS sgemm on the same shape, GEMV GB/s of weight bytes and its ratio to
 * memory-copy bandwidth, all measured in this one run. {@code bin/bench-kernels} is the way to call it.
 *
 * <p>Arguments: {@code --threads N} (default: all processors), {@code --bits 4,2,3,8}, {@code --quick} (fewer
 * iterations), {@code --only fused|gemv}.
 */
public final class KernelBench {
    private KernelBench() {}

    public static void main(String[] args) throws RunnerException {
        int threads = Runtime.getRuntime().availableProcessors();
        String bits = "4,2,3,8";
        boolean quick = false;
        String only = "";
        for (int a = 0; a < args.length; a++) {
            switch (args[a]) {
                case "--threads" -> threads = Integer.parseInt(args[++a]);
                case "--bits" -> bits = args[++a];
                case "--quick" -> quick = true;
                case "--only" -> only = args[++a];
                default -> throw new IllegalArgumentException("unknown argument " + args[a]
                        + ": use --threads N, --bits 4,2,3,8, --quick, --only fused|gemv");
            }
        }
        ChainedOptionsBuilder options = new OptionsBuilder()
                .param("threads", Integer.toString(threads))
                .param("bits", bits.split(","))
                .shouldFailOnError(true);
        if (!only.equals("gemv")) {
            options.include(SgemmBench.class.getSimpleName()).include(FusedMatmulBench.class.getSimpleName());
        }
        if (!only.equals("fused")) {
            options.include(GemvBench.class.getSimpleName());
        }
        if (quick) {
            options.warmupIterations(2).measurementIterations(3).measurementTime(TimeValue.seconds(1));
        }
        Collection<RunResult> results = new Runner(options.build()).run();
        System.out.println(report(results, threads));
    }

    private static String report(Collection<RunResult> results, int threads) {
        Map<String, Double> scores = new HashMap<>(); // "method bits" -> score in the benchmark's unit
        Map<String, RunResult> byKey = new HashMap<>();
        for (RunResult r : results) {
            String method = r.getParams().getBenchmark();
            method = method.substring(method.lastIndexOf('.') + 1);
            String bitsParam = r.getParams().getParam("bits");
            String key = method + (bitsParam == null ? "" : " " + bitsParam);
            scores.put(key, r.getPrimaryResult().getScore());
            byKey.put(key, r);
        }
        List<String> lines = new ArrayList<>();
        lines.add(String.format(Locale.ROOT, "threads: %d, java: %s, species: %s, OpenBLAS: %s", threads,
                Runtime.version(), jdk.incubator.vector.FloatVector.SPECIES_PREFERRED,
                OpenBlas.load().map(OpenBlas::corename).orElse("missing")));
        Double blasMs = scores.get("openblasSgemm");
        Double ourSgemmMs = scores.get("vectorSgemm");
        RunResult sgemm = byKey.getOrDefault("openblasSgemm", byKey.get("vectorSgemm"));
        if (sgemm != null) {
            double flop = 2.0 * p(sgemm, "tokens") * p(sgemm, "in") * p(sgemm, "out");
            lines.add(String.format(Locale.ROOT, "shape: %d tokens x %d in x %d out (%.2f GFLOP per product)",
                    (int) p(sgemm, "tokens"), (int) p(sgemm, "in"), (int) p(sgemm, "out"), flop / 1e9));
            if (blasMs != null) {
                lines.add(String.format(Locale.ROOT, "  OpenBLAS sgemm          %8.2f ms %8.1f GFLOP/s", blasMs,
                        gflops(flop, blasMs)));
            } else {
                lines.add("  OpenBLAS sgemm          not measured (library missing): no ratios");
            }
            if (ourSgemmMs != null) {
                lines.add(row("Vector API sgemm", ourSgemmMs, flop, blasMs));
            }
            for (String b : new String[] {"2", "3", "4", "8"}) {
                Double fused = scores.get("fusedMatmul " + b);
                if (fused != null) {
                    lines.add(row("fused int" + b + " y=xW^T", fused, flop, blasMs));
                }
                Double transposed = scores.get("fusedMatmulTransposed " + b);
                if (transposed != null) {
                    lines.add(row("fused int" + b + " dx=dyW", transposed, flop, blasMs));
                }
            }
        }
        Double copyUs = scores.entrySet().stream().filter(e -> e.getKey().startsWith("memoryCopy"))
                .map(Map.Entry::getValue).min(Double::compare).orElse(null);
        if (copyUs != null) {
            double copyGbs = 2.0 * GemvBench.COPY_BYTES / (copyUs * 1e3);
            lines.add(String.format(Locale.ROOT, "memory copy: %d MB read + %d MB written in %.1f us = %.1f GB/s"
                    + " (read+written bytes; best of the runs)", GemvBench.COPY_BYTES >> 20,
                    GemvBench.COPY_BYTES >> 20, copyUs, copyGbs));
            for (String b : new String[] {"2", "3", "4", "8"}) {
                RunResult gemv = byKey.get("gemv " + b);
                if (gemv != null) {
                    double us = gemv.getPrimaryResult().getScore();
                    long bytes = GemvBench.weightBytes(Integer.parseInt(b), (int) p(gemv, "in"), (int) p(gemv, "out"),
                            (int) p(gemv, "groupSize"));
                    double gbs = bytes / (us * 1e3);
                    lines.add(String.format(Locale.ROOT, "  gemv int%s g%d 1x%dx%d  %8.1f us %6.1f GB/s of weight"
                            + " bytes (%.1f MB) = %.2fx copy bandwidth", b, (int) p(gemv, "groupSize"),
                            (int) p(gemv, "in"), (int) p(gemv, "out"), us, gbs, bytes / 1e6, gbs / copyGbs));
                }
            }
        }
        return String.join("\n", lines);
    }

    private static String row(String name, double ms, double flop, Double blasMs) {
        return String.format(Locale.ROOT, "  %-22s  %8.2f ms %8.1f GFLOP/s%s", name, ms, gflops(flop, ms),
                blasMs == null ? "" : String.format(Locale.ROOT, "  = %.2fx OpenBLAS", blasMs / ms));
    }

    private static double gflops(double flop, double ms) {
        return flop / (ms * 1e6);
    }

    private static double p(RunResult r, String name) {
        return Double.parseDouble(r.getParams().getParam(name));
    }
}
