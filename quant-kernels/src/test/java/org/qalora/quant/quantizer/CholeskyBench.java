package org.qalora.quant.quantizer;

import java.util.Arrays;
import org.qalora.quant.kernels.BlockedCholesky;
import org.qalora.quant.kernels.KernelPool;

/**
 * GPTQ's solves for one LLaMA-7B decoder layer on the CPU (issue 13 item 6): the inverse-Hessian factor of the
 * layer's four distinct inputs (q/k/v share the attention input, gate/up the MLP input: three Hessians of 4096, and
 * down's of 11008), plain {@link CholeskyMath} against {@link BlockedCholesky} on the same matrix, checked bit for
 * bit, then (optionally) the column-by-column quantization of the seven projections on the blocked factors.
 *
 * <p>Arguments: {@code [threads] [naiveMaxN] [quantize true|false] [sizes...]}; the plain solve runs only for
 * sizes up to {@code naiveMaxN} (it is single-threaded, about n^3 / 1.5e9 seconds). Prints seconds per solve and the
 * ratio; see docs/PERFORMANCE.md, "formats".
 */
public final class CholeskyBench {
    private CholeskyBench() {}

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        int naiveMax = args.length > 1 ? Integer.parseInt(args[1]) : 4096;
        boolean quantize = args.length > 2 && Boolean.parseBoolean(args[2]);
        int[] sizes = args.length > 3 ? Arrays.stream(args, 3, args.length).mapToInt(Integer::parseInt).toArray()
                : new int[] {4096, 11008};
        System.out.printf("inverse-Hessian factor, plain vs blocked (%d threads); %d cores%n", threads,
                Runtime.getRuntime().availableProcessors());
        try (KernelPool pool = new KernelPool(threads)) {
            BlockedCholesky.upperCholeskyOfInverse(BlockedCholeskyTest.dampedHessian(256, 300, 1), 256, "warm-up", pool);
            for (int n : sizes) {
                double[] h = BlockedCholeskyTest.dampedHessian(n, 256, n);
                long t0 = System.nanoTime();
                double[] blocked = BlockedCholesky.upperCholeskyOfInverse(h, n, "w", pool);
                double tb = (System.nanoTime() - t0) / 1e9;
                if (n <= naiveMax) {
                    long t1 = System.nanoTime();
                    double[] plain = CholeskyMath.upperCholeskyOfInverse(h, n, "w");
                    double tp = (System.nanoTime() - t1) / 1e9;
                    System.out.printf("n %5d: plain %.2f s, blocked %.2f s, ratio %.1fx, bit-identical %b%n", n, tp, tb,
                            tp / tb, Arrays.equals(plain, blocked));
                } else {
                    System.out.printf("n %5d: blocked %.2f s (plain not run: n > %d)%n", n, tb, naiveMax);
                }
            }
        }
        if (quantize) {
            quantizeLayer();
        }
    }

    /** The seven projections of one layer on the default (blocked) path: 3 x prepare(4096), prepare(11008), 7 x quantize. */
    private static void quantizeLayer() {
        GptqQuantizer q = new GptqQuantizer(4, 32, false, false, false, 0.01);
        Hessian[] hs = {hessian(4096), hessian(4096), hessian(4096), hessian(11008)};
        long t0 = System.nanoTime();
        GptqQuantizer.InverseHessian attn = q.prepare(hs[0], "attn");
        GptqQuantizer.InverseHessian o = q.prepare(hs[1], "o");
        GptqQuantizer.InverseHessian mlp = q.prepare(hs[2], "mlp");
        GptqQuantizer.InverseHessian down = q.prepare(hs[3], "down");
        long t1 = System.nanoTime();
        int[][] shapes = {{4096, 4096}, {4096, 4096}, {4096, 4096}, {4096, 4096}, {11008, 4096}, {11008, 4096},
            {4096, 11008}};
        GptqQuantizer.InverseHessian[] inputs = {attn, attn, attn, o, mlp, mlp, down};
        java.util.Random rnd = new java.util.Random(7);
        long quantizeNanos = 0;
        for (int p = 0; p < shapes.length; p++) {
            float[] w = new float[shapes[p][0] * shapes[p][1]];
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) rnd.nextGaussian() * 0.02f;
            }
            long s = System.nanoTime();
            q.quantize(w, shapes[p][0], shapes[p][1], inputs[p], "p" + p);
            quantizeNanos += System.nanoTime() - s;
        }
        System.out.printf("one LLaMA-7B layer, GPTQ 4-bit g32 on the blocked factor: 4 prepares (damping +"
                + " solve) %.1f s, 7 quantizations %.1f s%n", (t1 - t0) / 1e9, quantizeNanos / 1e9);
    }

    private static Hessian hessian(int n) {
        Hessian h = new Hessian(n);
        h.add(GptqQuantizerTest.activations(256, n, n), 256, 1);
        return h;
    }
}
