package org.qalora.worker.backend.cuda;

import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.TinyModels;

/**
 * Causal attention forward and backward in bf16 on the GPU: the fused flash-attention kernels against the unfused
 * cuBLAS + softmax-kernel path, in the same process. Prints the median milliseconds of each over the repetitions,
 * the useful TFLOP/s (causal products count half: forward 2 products of B H T^2 d flops, backward 5, as the fused
 * kernels do them) and the ratio. {@code java ... FlashAttentionBench [B T H KV d] [reps]}; the default is one
 * LLaMA-7B layer of the training benchmark (16 x 512, 32 heads of 128).
 */
public final class FlashAttentionBench {
    private FlashAttentionBench() {}

    public static void main(String[] args) {
        int[] a = args.length >= 5 ? Arrays.stream(args, 0, 5).mapToInt(Integer::parseInt).toArray()
                : new int[] {16, 512, 32, 32, 128};
        int reps = args.length > 5 ? Integer.parseInt(args[5]) : 20;
        AttentionShape s = new AttentionShape(a[0], a[1], a[2], a[3], a[4]);
        try (CudaBackend gpu = new CudaBackend(0, Precision.BF16)) {
            SplittableRandom rng = new SplittableRandom(3);
            int n = s.tokens();
            Tensor q = gpu.allocateActivation(n, s.queryWidth()), k = gpu.allocateActivation(n, s.kvWidth()),
                    v = gpu.allocateActivation(n, s.kvWidth()), d = gpu.allocateActivation(n, s.queryWidth());
            gpu.write(q, TinyModels.gaussian(rng, n * s.queryWidth(), 1.0));
            gpu.write(k, TinyModels.gaussian(rng, n * s.kvWidth(), 1.0));
            gpu.write(v, TinyModels.gaussian(rng, n * s.kvWidth(), 1.0));
            gpu.write(d, TinyModels.gaussian(rng, n * s.queryWidth(), 1.0));
            Tensor out = gpu.allocateActivation(n, s.queryWidth()), dq = gpu.allocateActivation(n, s.queryWidth()),
                    dk = gpu.allocateActivation(n, s.kvWidth()), dv = gpu.allocateActivation(n, s.kvWidth());
            // One causal product of a head: T^2 d / 2 multiply-adds = T^2 d flops; forward 2 products, backward 5.
            double product = (double) s.batch() * s.heads() * s.seqLen() * s.seqLen() * s.headDim();
            double[][] ms = new double[2][];
            for (int mode = 0; mode < 2; mode++) {
                gpu.fusedAttention(mode == 0);
                Tensor state = gpu.attentionState(s);
                double[] fwd = new double[reps], bwd = new double[reps];
                for (int r = -3; r < reps; r++) {
                    double f = gpu.driver().timeMillis(() -> gpu.attention(q, k, v, s, state, out));
                    double b = gpu.driver().timeMillis(() -> gpu.attentionBackward(d, q, k, v, state, s, dq, dk, dv));
                    if (r >= 0) {
                        fwd[r] = f;
                        bwd[r] = b;
                    }
                }
                ms[mode] = new double[] {median(fwd), median(bwd)};
                System.out.printf(Locale.ROOT, "attention %s %s: forward %.3f ms (%.0f TFLOP/s), backward %.3f ms"
                                + " (%.0f TFLOP/s)%n", mode == 0 ? "fused  " : "unfused", s, ms[mode][0],
                        2 * product / ms[mode][0] / 1e9, ms[mode][1], 5 * product / ms[mode][1] / 1e9);
            }
            gpu.fusedAttention(true);
            System.out.printf(Locale.ROOT, "ratio attention fused / unfused: forward %.2fx, backward %.2fx,"
                            + " forward + backward %.2fx faster%n", ms[1][0] / ms[0][0], ms[1][1] / ms[0][1],
                    (ms[1][0] + ms[1][1]) / (ms[0][0] + ms[0][1]));
        }
    }

    private static double median(double[] x) {
        double[] c = x.clone();
        Arrays.sort(c);
        return c[c.length / 2];
    }
}
