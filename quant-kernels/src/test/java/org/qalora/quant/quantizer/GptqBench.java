package org.qalora.quant.quantizer;

import java.util.Random;
import org.qalora.quant.kernels.DenseKernels;
import org.qalora.quant.kernels.ReferenceDenseKernels;
import org.qalora.quant.kernels.VectorDenseKernels;

/**
 * GPTQ of one {@code [out, in]} layer (Hessian from {@code tokens} calibration tokens, 4-bit, g32) on the Vector
 * API kernels against the naive reference kernels in the same run, plus RTN for scale. Prints seconds per stage
 * (best of {@code repeats} after a warm-up) and the speedup. Arguments: {@code [out] [in] [tokens] [repeats]}; see docs/PERFORMANCE.md, "formats".
 */
public final class GptqBench {
    private GptqBench() {}

    public static void main(String[] args) {
        int out = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        int in = args.length > 1 ? Integer.parseInt(args[1]) : 1024;
        int tokens = args.length > 2 ? Integer.parseInt(args[2]) : 2048;
        int repeats = args.length > 3 ? Integer.parseInt(args[3]) : 2;
        Random rnd = new Random(1);
        float[] w = new float[out * in];          // [out, in]
        for (int j = 0; j < w.length; j++) {
            w[j] = (float) rnd.nextGaussian() * 0.02f;
        }
        float[] x = GptqQuantizerTest.activations(tokens, in, 2); // [tokens, in]
        System.out.printf("GPTQ 4-bit g32 of a [%d, %d] layer, Hessian from %d tokens, %d cores%n", out, in, tokens,
                Runtime.getRuntime().availableProcessors());
        double[] vector = time("vector", new VectorDenseKernels(), w, out, in, x, tokens, repeats);
        double[] naive = time("reference", new ReferenceDenseKernels(), w, out, in, x, tokens, repeats);
        long t0 = System.nanoTime();
        new RtnQuantizer(4, 32, false).quantize(w, out, in, "w");
        System.out.printf("rtn: %.3f s%n", (System.nanoTime() - t0) / 1e9);
        System.out.printf("speedup vector/reference: hessian %.1fx, quantize %.1fx (prepare is shared code, %.1fx)%n",
                naive[0] / vector[0], naive[2] / vector[2], naive[1] / vector[1]);
    }

    /** Best-of-{@code repeats} seconds for {hessian, prepare (damp + Cholesky), quantize}, after one warm-up run. */
    private static double[] time(String label, DenseKernels kernels, float[] w, int out, int in, float[] x, int tokens,
                                 int repeats) {
        double[] best = {Double.MAX_VALUE, Double.MAX_VALUE, Double.MAX_VALUE};
        for (int r = 0; r <= repeats; r++) {
            long t0 = System.nanoTime();
            Hessian h = new Hessian(in, kernels);
            h.add(x, tokens, 1);
            long t1 = System.nanoTime();
            GptqQuantizer q = new GptqQuantizer(4, 32, false, false, false, 0.01, kernels);
            GptqQuantizer.InverseHessian inverse = q.prepare(h, "w");
            long t2 = System.nanoTime();
            q.quantize(w, out, in, inverse, "w");
            long t3 = System.nanoTime();
            if (r > 0) { // r == 0 warms up the JIT
                best[0] = Math.min(best[0], (t1 - t0) / 1e9);
                best[1] = Math.min(best[1], (t2 - t1) / 1e9);
                best[2] = Math.min(best[2], (t3 - t2) / 1e9);
            }
        }
        System.out.printf("%s: hessian %.3f s, prepare %.3f s, quantize %.3f s%n", label, best[0], best[1], best[2]);
        return best;
    }
}
