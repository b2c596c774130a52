package org.qalora.worker.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.cuda.CudaGraphs;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.cuda.CudaBackend;
import org.qalora.worker.backend.cuda.CudaTestSupport;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.model.CachedPass;
import org.qalora.worker.model.KvCache;

/**
 * Decoding on the GPU, where each decode step is recorded once as a CUDA graph and replayed: the replayed steps give
 * the eager steps' logits bit for bit (fp32 and bf16, base + adapter and merged, the batch shrinking mid-way so a
 * second graph is recorded), and fp32 decoding stays within the KV-cache bound of the CPU's full forward. Skipped
 * without a GPU.
 */
class CudaGenerationTest {
    private static final int VOCAB = 512;
    private static final int STEPS = 9;

    @TempDir
    Path tmp;

    @Test
    void replayedDecodeStepsEqualEagerStepsBitForBit() {
        CudaTestSupport.backendOrSkip(Precision.FP32).close();            // skip before merging on a CPU machine
        Path merged = tmp.resolve("merged");
        Merger.merge(Fixtures.tinyLlamaGptq().toString(), Fixtures.tinyLlamaAdapter().toString(), merged.toString());
        for (Precision precision : new Precision[] {Precision.FP32, Precision.BF16}) {
            try (CudaBackend gpu = CudaTestSupport.backendOrSkip(precision)) {
                for (String adapter : new String[] {Fixtures.tinyLlamaAdapter().toString(), null}) {
                    String model = adapter == null ? merged.toString() : Fixtures.tinyLlamaGptq().toString();
                    InferenceModel m = InferenceModel.load(model, adapter, gpu, HadoopPaths.defaults());
                    String what = precision + (adapter == null ? " merged" : " base + adapter");
                    gpu.useGraphs(false);
                    List<float[]> eager = decodeLogits(m);
                    gpu.useGraphs(true);
                    long before = CudaGraphs.of(gpu.driver()).captures();
                    List<float[]> replayed = decodeLogits(m);
                    long recorded = CudaGraphs.of(gpu.driver()).captures() - before;
                    assertEquals(2, recorded, what + ": one graph for 3 rows, one for 2");
                    for (int s = 0; s < eager.size(); s++) {
                        assertArrayEquals(eager.get(s), replayed.get(s), what + ": logits of decode step " + s);
                    }
                }
            }
        }
    }

    @Test
    void fp32DecodingStaysWithinTheKvCacheBoundOfTheCpuFullForward() {
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.FP32);
             org.qalora.worker.backend.CpuBackend cpu = new org.qalora.worker.backend.CpuBackend(2)) {
            InferenceModel onGpu = InferenceModel.load(Fixtures.tinyLlamaGptq().toString(),
                    Fixtures.tinyLlamaAdapter().toString(), gpu, HadoopPaths.defaults());
            InferenceModel onCpu = InferenceModel.load(Fixtures.tinyLlamaGptq().toString(),
                    Fixtures.tinyLlamaAdapter().toString(), cpu, HadoopPaths.defaults());
            List<int[]> prompts = GenerationTest.prompts(21, 6, 3, 8);
            List<int[]> tokens = onGpu.generator().generate(prompts, new Generator.Settings(STEPS, -1, Sampling.GREEDY,
                    3), null);
            double worst = 0;
            for (int j = 0; j < prompts.size(); j++) {
                int[] seq = prompts.get(j);
                for (int t = 0; t < tokens.get(j).length; t++) {
                    float[] full = FullForward.lastLogits(onCpu, seq);
                    assertEquals(TokenSampler.argmax(full, 0, VOCAB), tokens.get(j)[t], "prompt " + j + " token " + t);
                    seq = FullForward.append(seq, tokens.get(j)[t]);
                }
            }
            // the logits themselves, step by step, for the first prompt
            try (CachedPass pass = new CachedPass(onGpu.model(), onGpu.adapter(), new KvCache(onGpu.model(), 1, 20))) {
                int[] seq = prompts.get(0);
                pass.prefill(0, seq);
                for (int t = 0; t < STEPS - 1; t++) {
                    int next = tokens.get(0)[t];
                    float[] got = pass.decode(new int[] {0}, new int[] {next});
                    seq = FullForward.append(seq, next);
                    double err = MergeCheck.relativeError(got, FullForward.lastLogits(onCpu, seq));
                    assertTrue(err < 1e-4, "step " + t + ": relative error " + err);
                    worst = Math.max(worst, err);
                }
            }
            System.out.printf("GPU fp32 replayed decode vs CPU full forward: worst relative logit error %.3g%n", worst);
        }
    }

    /** Prefill 3 prompts, decode 3 rows for a few steps, then 2 rows (one sequence done): every step's logits. */
    private static List<float[]> decodeLogits(InferenceModel m) {
        List<int[]> prompts = GenerationTest.prompts(17, 5, 9, 2);
        List<float[]> out = new ArrayList<>();
        try (CachedPass pass = new CachedPass(m.model(), m.adapter(), new KvCache(m.model(), 3, 9 + STEPS))) {
            int[] next = new int[3];
            for (int j = 0; j < 3; j++) {
                next[j] = TokenSampler.argmax(pass.prefill(j, prompts.get(j)), 0, VOCAB);
            }
            for (int step = 0; step < STEPS; step++) {
                int[] seqs = step < 4 ? new int[] {0, 1, 2} : new int[] {0, 2};
                int[] ids = new int[seqs.length];
                for (int n = 0; n < seqs.length; n++) {
                    ids[n] = next[seqs[n]];
                }
                float[] logits = pass.decode(seqs, ids);
                out.add(logits);
                for (int n = 0; n < seqs.length; n++) {
                    next[seqs[n]] = TokenSampler.argmax(logits, n * VOCAB, VOCAB);
                }
            }
        }
        return out;
    }
}
