package org.qalora.worker.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.generate.Generator;
import org.qalora.worker.generate.InferenceModel;
import org.qalora.worker.generate.Sampling;
import org.qalora.worker.model.LlamaDims;

/**
 * Batch-1 greedy decode speed of a checkpoint on the CPU: a prompt of P random ids, then N new tokens (no EOS),
 * timed per token after a warm-up generation; prints ms per token, tokens/s, and the weight bytes one token reads
 * (quantized codes + fp32 scales and zeros, lm_head) as GB/s.
 * {@code java ... DecodeBench MODEL_DIR [threads=2] [new tokens=64] [prompt=32] [rounds=3] [int8=false|true|both]}:
 * {@code true} rounds the decode steps' quantized products' input to int8 ({@code CpuBackend(threads, true)});
 * {@code both} loads the model on an exact and an int8 backend and alternates their rounds in this one JVM (the
 * fair comparison on a shared machine).
 */
public final class DecodeBench {
    private DecodeBench() {}

    public static void main(String[] args) {
        String dir = args[0];
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int tokens = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        int promptLen = args.length > 3 ? Integer.parseInt(args[3]) : 32;
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        String int8 = args.length > 5 ? args[5] : "false";
        List<CpuBackend> backends = new ArrayList<>();
        if (!int8.equals("true")) {
            backends.add(new CpuBackend(threads, false));
        }
        if (!int8.equals("false")) {
            backends.add(new CpuBackend(threads, true));
        }
        List<InferenceModel> models = new ArrayList<>();
        for (CpuBackend be : backends) {
            models.add(InferenceModel.load(dir, null, be, HadoopPaths.defaults()));
        }
        LlamaDims d = models.get(0).model().dims();
        int[] prompt = new SplittableRandom(1).ints(promptLen, 3, d.vocab()).toArray();
        Generator.Settings s = new Generator.Settings(tokens, -1, Sampling.GREEDY, 1);
        for (InferenceModel m : models) {
            m.generator().generate(List.of(prompt), s, null);                           // warm-up: JIT
        }
        long[] stamps = new long[tokens + 1];
        double[] best = new double[models.size()];
        java.util.Arrays.fill(best, Double.MAX_VALUE);
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < models.size(); k++) {
                int[] n = {0};
                stamps[0] = System.nanoTime();
                models.get(k).generator().generate(List.of(prompt), s, (p, t) -> stamps[++n[0]] = System.nanoTime());
                double perToken = (stamps[tokens] - stamps[1]) / 1e6 / (tokens - 1);   // decode steps only
                best[k] = Math.min(best[k], perToken);
                System.out.printf(Locale.ROOT, "round %d, %s: prefill of %d + first token %.1f ms, decode %.2f ms/token%n",
                        r, backends.get(k).name(), promptLen, (stamps[1] - stamps[0]) / 1e6, perToken);
            }
        }
        long weightBytes = 0;
        for (var q : models.get(0).model().quantizedMatrices().values()) {
            weightBytes += (long) q.outFeatures() * q.inFeatures() * q.bits() / 8
                    + 2L * q.outFeatures() * (q.inFeatures() / q.groupSize()) * Float.BYTES;
        }
        long headBytes = 4L * d.vocab() * d.hidden();
        for (int k = 0; k < models.size(); k++) {
            System.out.printf(Locale.ROOT, "%s on %s: best %.2f ms/token = %.1f tokens/s; weights read per token %.1f MB"
                            + " (%.1f MB quantized + %.1f MB fp32 lm_head) = %.1f GB/s%n", dir, backends.get(k).name(),
                    best[k], 1000 / best[k], (weightBytes + headBytes) / 1e6, weightBytes / 1e6, headBytes / 1e6,
                    (weightBytes + headBytes) / best[k] / 1e6);
        }
        backends.forEach(CpuBackend::close);
    }
}
