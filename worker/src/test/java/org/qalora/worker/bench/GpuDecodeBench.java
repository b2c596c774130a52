package org.qalora.worker.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.DeviceBuffer;
import org.qalora.quant.cuda.KernelProfile;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.cuda.CudaBackend;
import org.qalora.worker.generate.Generator;
import org.qalora.worker.generate.InferenceModel;
import org.qalora.worker.generate.Sampling;
import org.qalora.worker.model.LlamaModel;

/**
 * Batch-1 greedy decode on the GPU (bf16 backend) of a LLaMA-7B-shaped int4 g32 model with random weights (the
 * training benchmark's, 32 layers), as {@code qalora generate --device gpu} runs it: ms per token after a warm-up,
 * the weight bytes one token reads (packed codes, fp32 scales and zeros, the bf16 lm_head) as GB/s and as a fraction
 * of the device-to-device copy bandwidth measured in the same run, and the ratio to the PyTorch anchor's int4 eager
 * decode from its JSON line (bin/bench-gpu runs both). {@code java ... GpuDecodeBench [anchor.json|-] [new tokens]}.
 */
public final class GpuDecodeBench {
    private GpuDecodeBench() {}

    public static void main(String[] args) throws Exception {
        String anchor = args.length > 0 && !args[0].equals("-") ? Files.readString(Path.of(args[0])) : null;
        int tokens = args.length > 1 ? Integer.parseInt(args[1]) : 32;
        try (CudaBackend be = new CudaBackend(0, Precision.BF16)) {
            double copy = copyGBps(be);
            LlamaModel model = GpuTrainBench.model(be, 32);
            InferenceModel m = new InferenceModel(model, null);
            int[] prompt = new SplittableRandom(1).ints(32, 3, model.dims().vocab()).toArray();
            Generator.Settings s = new Generator.Settings(tokens, -1, Sampling.GREEDY, 1);
            be.useGraphs(false);
            double eagerMs = msPerToken(m, prompt, s);
            be.useGraphs(true);
            double best = msPerToken(m, prompt, s);
            long weightBytes = 0;
            for (QuantizedMatrix q : model.quantizedMatrices().values()) {
                weightBytes += (long) q.outFeatures() * q.inFeatures() * q.bits() / 8
                        + 2L * q.outFeatures() * (q.inFeatures() / q.groupSize()) * Float.BYTES;
            }
            // (one entry per layer and projection: the layers share matrices in memory here, not on the device)
            long headBytes = 2L * model.dims().vocab() * model.dims().hidden();
            double gbps = (weightBytes + headBytes) / best / 1e6;
            double eagerGbps = (weightBytes + headBytes) / eagerMs / 1e6;
            System.out.printf(Locale.ROOT, "ours decode int4 bf16 7B-shape L=32 batch 1 on %s, launched op by op: %.2f"
                    + " ms/token = %.1f tok/s = %.0f GB/s = %.2f of the copy bandwidth%n", be.name(), eagerMs,
                    1000 / eagerMs, eagerGbps, eagerGbps / copy);
            System.out.printf(Locale.ROOT, "ours decode int4 bf16 7B-shape L=32 batch 1 on %s, CUDA graph per step: %.2f"
                            + " ms/token = %.1f tok/s; weight bytes %.2f GB/token = %.0f GB/s = %.2f of the measured copy"
                            + " bandwidth (%.0f GB/s read + write); %.2fx the op-by-op decode%n", be.name(), best,
                    1000 / best, (weightBytes + headBytes) / 1e9, gbps, gbps / copy, copy, eagerMs / best);
            if (KernelProfile.enabled()) {
                profile(be, m, prompt, s);
            }
            Double eager = anchor == null ? null : GpuTrainBench.anchorTokens(anchor, "decode_", "int4-eager");
            if (eager != null) {
                System.out.printf(Locale.ROOT, "ratio ours / PyTorch int4-eager decode: %.2fx (%.1f vs %.1f tok/s)%n",
                        1000 / best / eager, 1000 / best, eager);
            }
        }
    }

    /**
     * Device time per kernel of one op-by-op decode ({@code -Dqalora.cuda.profile=true}): the profile is reset when
     * the prefill's token arrives, so the table covers the decode steps only, per token.
     */
    private static void profile(CudaBackend be, InferenceModel m, int[] prompt, Generator.Settings s) {
        be.useGraphs(false);
        int[] n = {0};
        m.generator().generate(List.of(prompt), s, (p, t) -> {
            if (n[0]++ == 0) {
                KernelProfile.reset();
            }
        });
        System.out.print("device time per decoded token by kernel (each launch timed over back-to-back repeats):\n"
                + KernelProfile.report(s.maxNewTokens() - 1));
    }

    /** Best ms per new token over 3 generations after a warm-up (the first token, the prefill's, not counted). */
    private static double msPerToken(InferenceModel m, int[] prompt, Generator.Settings s) {
        int tokens = s.maxNewTokens();
        m.generator().generate(List.of(prompt), s, null);                          // warm-up
        long[] stamps = new long[tokens + 1];
        double best = Double.MAX_VALUE;
        for (int r = 0; r < 3; r++) {
            int[] n = {0};
            stamps[0] = System.nanoTime();
            m.generator().generate(List.of(prompt), s, (p, t) -> stamps[++n[0]] = System.nanoTime());
            best = Math.min(best, (stamps[tokens] - stamps[1]) / 1e6 / (tokens - 1));
        }
        return best;
    }

    /** Device-to-device copy of 1 GiB, best of 5, counted as bytes read + written. */
    private static double copyGBps(CudaBackend be) {
        long bytes = 1L << 30;
        try (DeviceBuffer a = DeviceBuffer.allocate(be.driver(), bytes);
             DeviceBuffer b = DeviceBuffer.allocate(be.driver(), bytes)) {
            double best = Double.MAX_VALUE;
            for (int i = 0; i < 6; i++) {
                double ms = be.driver().timeMillis(() -> be.driver().copyDeviceToDevice(a.pointer(), b.pointer(), bytes));
                if (i > 0) {
                    best = Math.min(best, ms);
                }
            }
            return 2.0 * bytes / best / 1e6;
        }
    }
}
