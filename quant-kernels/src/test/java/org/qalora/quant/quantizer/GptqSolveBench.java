package org.qalora.quant.quantizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.CudaGptqColumns;
import org.qalora.quant.cuda.CudaGptqSolve;
import org.qalora.quant.cuda.Cusolver;

/**
 * GPTQ of one LLaMA-7B-shaped decoder layer with the inverse-Hessian factor on the CPU ({@link InverseFactorSolver#CPU},
 * the blocked Vector API solve on every core) and on the GPU ({@link CudaGptqSolve}, cuSOLVER), and the column stage
 * on the CPU ({@link CpuGptqColumns}) and on the GPU ({@link CudaGptqColumns}), in one run:
 * <ol>
 *   <li>the solve alone, for the two Hessian sizes of the layer (4096: the inputs of q/k/v/o/gate/up; 11008: down's):
 *   seconds on each, the ratio, and the factors' relative difference;
 *   <li>per projection ({@code [out, in]}: q/k/v/o 4096 x 4096, gate/up 11008 x 4096, down 4096 x 11008), the whole
 *   quantization as a solve task does it, {@code prepare} (damping + solve) then the column stage (4-bit, g32):
 *   {@code prepare} with each solver; the column stage on the CPU and on the GPU from the GPU's factor (seconds of
 *   {@code quantize}, host work and copies included; ratio; whether codes, scales and zeros are bit-identical); the
 *   whole on the CPU (both stages), with the solve on the GPU, and with both on the GPU (what {@code --gptq-solve gpu}
 *   runs); and the fraction of codes that the two solvers' factors make differ.
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
        String why = GptqSolve.gpuUnusableReason(0);
        if (why != null) {
            System.out.println("gptq solve bench: no GPU GPTQ here: " + why);
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
        GptqQuantizer gpuSolve = onCpu.withSolver(gpu);
        GptqQuantizer onGpu = gpuSolve.withColumns(new CudaGptqColumns(0));
        warmUpColumns(onCpu, onGpu);
        Random rnd = new Random(7);
        double sumCpu = 0;
        double sumGpuSolve = 0;
        double sumGpu = 0;
        boolean allIdentical = true;
        for (Shape s : LAYER) {
            if (!wanted.contains(s.name.replace("_proj", ""))) {
                continue;
            }
            float[] w = new float[s.out * s.in];
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) rnd.nextGaussian() * 0.02f;
            }
            Hessian h = hessians.get(s.in);
            Timed prepareCpu = timed(() -> onCpu.prepare(h, s.name));
            Timed prepareGpu = timed(() -> gpuSolve.prepare(h, s.name));
            GptqQuantizer.InverseHessian fromCpu = (GptqQuantizer.InverseHessian) prepareCpu.value();
            GptqQuantizer.InverseHessian fromGpu = (GptqQuantizer.InverseHessian) prepareGpu.value();
            Timed cpuAll = timed(() -> onCpu.quantize(w, s.out, s.in, fromCpu, s.name));
            Timed cpuColumns = timed(() -> gpuSolve.quantize(w, s.out, s.in, fromGpu, s.name));
            Timed gpuColumns = timed(() -> onGpu.quantize(w, s.out, s.in, fromGpu, s.name));
            QuantizedMatrix reference = (QuantizedMatrix) cpuColumns.value();
            QuantizedMatrix fast = (QuantizedMatrix) gpuColumns.value();
            boolean identical = java.util.Arrays.equals(reference.qweight(), fast.qweight())
                    && java.util.Arrays.equals(bits(reference.scales()), bits(fast.scales()))
                    && java.util.Arrays.equals(bits(reference.zeros()), bits(fast.zeros()));
            allIdentical &= identical;
            int differ = 0;
            int[] a = ((QuantizedMatrix) cpuAll.value()).codes();
            int[] b = reference.codes();
            for (int i = 0; i < a.length; i++) {
                differ += a[i] != b[i] ? 1 : 0;
            }
            double wholeCpu = prepareCpu.seconds() + cpuAll.seconds();
            double wholeGpuSolve = prepareGpu.seconds() + cpuColumns.seconds();
            double wholeGpu = prepareGpu.seconds() + gpuColumns.seconds();
            sumCpu += wholeCpu;
            sumGpuSolve += wholeGpuSolve;
            sumGpu += wholeGpu;
            System.out.printf(Locale.ROOT, "%-9s [%5d x %5d]: prepare cpu %7.3f s, gpu %7.3f s (%6.1fx); columns cpu"
                            + " %7.3f s, gpu %7.3f s (%6.1fx), bit-identical: %s; whole cpu %7.3f s, gpu solve %7.3f s,"
                            + " gpu both %7.3f s (%5.2fx); codes differing by solver %.2e%n",
                    s.name, s.out, s.in, prepareCpu.seconds(), prepareGpu.seconds(),
                    prepareCpu.seconds() / prepareGpu.seconds(), cpuColumns.seconds(), gpuColumns.seconds(),
                    cpuColumns.seconds() / gpuColumns.seconds(), identical ? "yes" : "NO", wholeCpu, wholeGpuSolve,
                    wholeGpu, wholeCpu / wholeGpu, differ / (double) a.length);
        }
        System.out.printf(Locale.ROOT, "layer (projections above, each preparing its own Hessian): cpu %.1f s, gpu solve"
                + " %.1f s (%.2fx), gpu solve + columns %.1f s (%.2fx); column stages bit-identical: %s%n", sumCpu,
                sumGpuSolve, sumCpu / sumGpuSolve, sumGpu, sumCpu / sumGpu, allIdentical ? "yes" : "NO");
        if (!allIdentical) {
            System.exit(1);
        }
    }

    /** One small GPTQ on each column stage first (JIT, module load), outside the timings. */
    private static void warmUpColumns(GptqQuantizer cpu, GptqQuantizer gpu) {
        int n = 256;
        Hessian h = new Hessian(n);
        h.add(GptqQuantizerTest.activations(n, n, 5), n, 1);
        float[] w = new float[64 * n];
        Random rnd = new Random(3);
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        GptqQuantizer.InverseHessian prepared = cpu.prepare(h, "warm-up");
        cpu.quantize(w, 64, n, prepared, "warm-up");
        gpu.quantize(w, 64, n, prepared, "warm-up");
    }

    /** Seconds of one call and what it returned. */
    private record Timed(double seconds, Object value) {}

    private static Timed timed(java.util.function.Supplier<Object> work) {
        long t0 = System.nanoTime();
        Object value = work.get();
        return new Timed((System.nanoTime() - t0) / 1e9, value);
    }

    private static int[] bits(float[] values) {
        int[] b = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = Float.floatToRawIntBits(values[i]);
        }
        return b;
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
