package org.qalora.quant.quantizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.CudaGptqSolve;
import org.qalora.quant.cuda.Cusolver;

/**
 * GPTQ of one LLaMA-7B-shaped decoder layer with the inverse-Hessian factor on the CPU ({@link InverseFactorSolver#CPU},
 * the blocked Vector API solve on every core) and on the GPU ({@link CudaGptqSolve}, cuSOLVER), in one run:
 * <ol>
 *   <li>the solve alone, for the two Hessian sizes of the layer (4096: the inputs of q/k/v/o/gate/up; 11008: down's):
 *   seconds on each, the ratio, and the factors' relative difference;
 *   <li>per projection ({@code [out, in]}: q/k/v/o 4096 x 4096, gate/up 11008 x 4096, down 4096 x 11008), the whole
 *   quantization as a solve task does it, {@code prepare} (damping + solve) then the column-by-column GPTQ (4-bit,
 *   g32, on the CPU in both cases), with each solver: seconds, ratio, and the fraction of codes that differ.
 * </ol>
 * Every projection prepares its own Hessian here (a real layer shares one factor between q/k/v and between gate/up;
 * the per-projection figure is what one distributed solve task spends). Hessians from {@code tokens} random
 * correlated calibration tokens with outlier channels ({@code GptqQuantizerTest.activations}), damping 1%; weights
 * Gaussian. One 256-wide solve on each side first (JIT, cuSOLVER's handle and module load).
 *
 * <p>Arguments: {@code [projections (comma-separated of q,k,v,o,gate,up,down; default all)] [tokens (256)]}. Run
 * from the folder {@code bin/gpu-pack} makes (docs/PERFORMANCE.md, "GPTQ's inverse-Hessian solve on the GPU").
 */
public final class GptqSolveBench {
    private GptqSolveBench() {}

    private record Shape(String name, int out, int in) {}

    private static final List<Shape> LAYER = List.of(new Shape("q_proj", 4096, 4096), new Shape("k_proj", 4096, 4096),
            new Shape("v_proj", 4096, 4096), new Shape("o_proj", 4096, 4096), new Shape("gate_proj", 11008, 4096),
            new Shape("up_proj", 11008, 4096), new Shape("down_proj", 4096, 11008));

    public static void main(String[] args) {
        List<String> wanted = args.length > 0 ? List.of(args[0].split(",")) : List.of("q", "k", "v", "o", "gate", "up",
                "down");
        int tokens = args.length > 1 ? Integer.parseInt(args[1]) : 256;
        String why = CudaGptqSolve.unusableReason(0);
        if (why != null) {
            System.out.println("gptq solve bench: no GPU solve here: " + why);
            System.exit(2);
        }
        CudaGptqSolve gpu = new CudaGptqSolve(0);
        InverseFactorSolver cpu = InverseFactorSolver.CPU;
        System.out.printf(Locale.ROOT, "GPTQ inverse-Hessian solve, CPU (blocked Vector API, %d cores) vs GPU (%s, %s);"
                        + " Hessians from %d tokens, 1%% damping; GPTQ 4-bit g32%n",
                Runtime.getRuntime().availableProcessors(), Cusolver.get().driver().deviceName(), Cusolver.get().soname(),
                tokens);
        double[] warm = BlockedCholeskyTest.dampedHessian(256, 300, 1);
        cpu.upperCholeskyOfInverse(warm, 256, "warm-up");
        gpu.upperCholeskyOfInverse(warm, 256, "warm-up");

        List<Integer> sizes = new ArrayList<>();
        for (Shape s : LAYER) {
            if (wanted.contains(s.name.replace("_proj", "")) && !sizes.contains(s.in)) {
                sizes.add(s.in);
            }
        }
        java.util.Map<Integer, Hessian> hessians = new java.util.HashMap<>();
        for (int n : sizes) {
            Hessian h = new Hessian(n);
            h.add(GptqQuantizerTest.activations(tokens, n, n), tokens, 1);
            hessians.put(n, h);
            double[] damped = damped(h);
            long t0 = System.nanoTime();
            double[] c = cpu.upperCholeskyOfInverse(damped, n, "solve");
            long t1 = System.nanoTime();
            double[] g = gpu.upperCholeskyOfInverse(damped, n, "solve");
            long t2 = System.nanoTime();
            double tc = (t1 - t0) / 1e9;
            double tg = (t2 - t1) / 1e9;
            System.out.printf(Locale.ROOT, "solve n %5d: cpu %7.3f s, gpu %7.3f s (copies included), ratio %6.1fx;"
                    + " relative difference %.2e%n", n, tc, tg, tc / tg, CudaGptqSolve.relativeDifference(g, c));
        }

        GptqQuantizer onCpu = new GptqQuantizer(4, 32, false, false, false, 0.01);
        GptqQuantizer onGpu = onCpu.withSolver(gpu);
        Random rnd = new Random(7);
        double sumCpu = 0;
        double sumGpu = 0;
        for (Shape s : LAYER) {
            if (!wanted.contains(s.name.replace("_proj", ""))) {
                continue;
            }
            float[] w = new float[s.out * s.in];
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) rnd.nextGaussian() * 0.02f;
            }
            Hessian h = hessians.get(s.in);
            Timed tc = prepareAndQuantize(onCpu, w, s, h);
            Timed tg = prepareAndQuantize(onGpu, w, s, h);
            int differ = 0;
            int[] a = tc.result().codes();
            int[] b = tg.result().codes();
            for (int i = 0; i < a.length; i++) {
                differ += a[i] != b[i] ? 1 : 0;
            }
            sumCpu += tc.whole();
            sumGpu += tg.whole();
            System.out.printf(Locale.ROOT, "%-9s [%5d x %5d]: prepare cpu %7.3f s, gpu %7.3f s (%6.1fx); + quantize"
                            + " (%.3f / %.3f s): whole cpu %7.3f s, gpu %7.3f s, ratio %5.2fx; codes differing %.2e%n",
                    s.name, s.out, s.in, tc.prepare(), tg.prepare(), tc.prepare() / tg.prepare(), tc.quantize(),
                    tg.quantize(), tc.whole(), tg.whole(), tc.whole() / tg.whole(), differ / (double) a.length);
        }
        System.out.printf(Locale.ROOT, "layer (projections above, each preparing its own Hessian): cpu %.1f s, gpu %.1f s,"
                + " ratio %.2fx%n", sumCpu, sumGpu, sumCpu / sumGpu);
    }

    /** One projection's seconds for {@code prepare} (damping + solve) and {@code quantize}, and its result. */
    private record Timed(double prepare, double quantize, QuantizedMatrix result) {
        double whole() { return prepare + quantize; }
    }

    private static Timed prepareAndQuantize(GptqQuantizer q, float[] w, Shape s, Hessian h) {
        long t0 = System.nanoTime();
        GptqQuantizer.InverseHessian inverse = q.prepare(h, s.name);
        long t1 = System.nanoTime();
        QuantizedMatrix m = q.quantize(w, s.out, s.in, inverse, s.name);
        long t2 = System.nanoTime();
        return new Timed((t1 - t0) / 1e9, (t2 - t1) / 1e9, m);
    }

    /** What {@code prepare} hands the solver for an identity order and no dead inputs: H + 1% of its mean diagonal. */
    private static double[] damped(Hessian hessian) {
        int n = hessian.columns();
        double[] h = hessian.matrix();
        double mean = 0;
        for (int i = 0; i < n; i++) {
            if (h[i * n + i] == 0) {
                h[i * n + i] = 1;
            }
            mean += h[i * n + i];
        }
        for (int i = 0; i < n; i++) {
            h[i * n + i] += 0.01 * mean / n;
        }
        return h;
    }
}
