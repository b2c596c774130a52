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
 * iterations), {@code --only fused|gemv|sgemm} (fused includes the sgemm baselines).
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
                        + ": use --threads N, --bits 4,2,3,8, --quick, --only fused|gemv|sgemm");
            }
        }
        ChainedOptionsBuilder options = new OptionsBuilder()
                .param("threads", Integer.toString(threads))
                .param("bits", bits.split(","))
                .shouldFailOnError(true);
        if (!only.equals("gemv")) {
            options.include(SgemmBench.class.getSimpleName());
        }
        if (!only.equals("gemv") && !only.equals("sgemm")) {
            options.include(FusedMatmulBench.class.getSimpleName());
        }
        if (only.isEmpty() || only.equals("gemv")) {
            options.include(GemvBench.class.getSimpleName()).include(CopyBench.class.getSimpleName());
        }
        if (quick) {
            options.warmupIterations(2).measurementIterations(3).measurementTime(TimeValue.seconds(1));
        }
        Collection<RunResult> results = new Runner(options.build()).run();
        System.out.println(report(results, threads));
    }

    /**
     * Benchmarks run in SampleTime mode: every call is timed. On a shared machine the median and the best call
     * are both reported; ratios compare like with like (median with median, best with best).
     */
    private static String report(Collection<RunResult> results, int threads) {
        Map<String, RunResult> byKey = new HashMap<>(); // "method bits" -> result
        for (RunResult r : results) {
            String method = r.getParams().getBenchmark();
            method = method.substring(method.lastIndexOf('.') + 1);
            String bitsParam = r.getParams().getParam("bits");
            byKey.put(method + (bitsParam == null ? "" : " " + bitsParam), r);
        }
        List<String> lines = new ArrayList<>();
        lines.add(String.format(Locale.ROOT, "threads: %d, java: %s, species: %s, OpenBLAS: %s", threads,
                Runtime.version(), jdk.incubator.vector.FloatVector.SPECIES_PREFERRED,
                OpenBlas.load().map(OpenBlas::corename).orElse("missing")));
        RunResult blas = byKey.get("openblasSgemm");
        RunResult sgemm = blas != null ? blas : byKey.get("vectorSgemm");
        if (sgemm != null) {
            double flop = 2.0 * p(sgemm, "tokens") * p(sgemm, "in") * p(sgemm, "out");
            lines.add(String.format(Locale.ROOT, "shape: %d tokens x %d in x %d out (%.2f GFLOP per product);"
                    + " median | best call", (int) p(sgemm, "tokens"), (int) p(sgemm, "in"), (int) p(sgemm, "out"),
                    flop / 1e9));
            if (blas == null) {
                lines.add("  OpenBLAS sgemm: not measured (library missing), no ratios");
            }
            addRow(lines, "OpenBLAS sgemm", blas, flop, null);
            addRow(lines, "Vector API sgemm", byKey.get("vectorSgemm"), flop, blas);
            for (String b : new String[] {"2", "3", "4", "8"}) {
                addRow(lines, "fused int" + b + " y=xW^T", byKey.get("fusedMatmul " + b), flop, blas);
                addRow(lines, "fused int" + b + " dx=dyW", byKey.get("fusedMatmulTransposed " + b), flop, blas);
            }
        }
        RunResult copy = byKey.entrySet().stream().filter(e -> e.getKey().startsWith("memoryCopy"))
                .map(Map.Entry::getValue).findFirst().orElse(null);
        if (copy != null) {
            double copyBytes = 2.0 * CopyBench.COPY_BYTES;
            double copyMedian = copyBytes / (median(copy) * 1e3);
            double copyBest = copyBytes / (best(copy) * 1e3);
            lines.add(String.format(Locale.ROOT, "memory copy: %d MB read + %d MB written (bytes counted: read +"
                    + " written): %.1f | %.1f GB/s", CopyBench.COPY_BYTES >> 20, CopyBench.COPY_BYTES >> 20,
                    copyMedian, copyBest));
            for (String b : new String[] {"2", "3", "4", "8"}) {
                RunResult gemv = byKey.get("gemv " + b);
                if (gemv != null) {
                    long bytes = GemvBench.weightBytes(Integer.parseInt(b), (int) p(gemv, "in"), (int) p(gemv, "out"),
                            (int) p(gemv, "groupSize"));
                    double median = bytes / (median(gemv) * 1e3);
                    double best = bytes / (best(gemv) * 1e3);
                    lines.add(String.format(Locale.ROOT,
                            "  gemv int%s g%d 1x%dx%d (%.1f MB of codes+scales+zeros read):"
                            + " %7.1f | %7.1f us  %5.1f | %5.1f GB/s  = %.2f | %.2fx copy", b,
                            (int) p(gemv, "groupSize"), (int) p(gemv, "in"), (int) p(gemv, "out"), bytes / 1e6,
                            median(gemv), best(gemv), median, best, median / copyMedian, best / copyBest));
                }
            }
        }
        return String.join("\n", lines);
    }

    private static void addRow(List<String> lines, String name, RunResult r, double flop, RunResult blas) {
        if (r == null) {
            return;
        }
        String ratio = blas == null ? "" : String.format(Locale.ROOT, "  = %.2f | %.2fx OpenBLAS",
                median(blas) / median(r), best(blas) / best(r));
        lines.add(String.format(Locale.ROOT, "  %-22s %8.1f | %8.1f ms %7.1f | %7.1f GFLOP/s%s", name, median(r),
                best(r), gflops(flop, median(r)), gflops(flop, best(r)), ratio));
    }

    private static double median(RunResult r) {
        return r.getPrimaryResult().getStatistics().getPercentile(50);
    }

    private static double best(RunResult r) {
        return r.getPrimaryResult().getStatistics().getMin();
    }

    private static double gflops(double flop, double ms) {
        return flop / (ms * 1e6);
    }

    private static double p(RunResult r, String name) {
        return Double.parseDouble(r.getParams().getParam(name));
    }
}
