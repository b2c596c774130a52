package org.qalora.worker.generate;

import java.util.Arrays;
import java.util.List;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;

/** Prints the sampled continuations {@link SamplingAcrossProcessesTest} compares, one line per prompt. */
public final class SampleMain {
    private SampleMain() {}

    static List<int[]> sample(int threads) {
        try (CpuBackend be = new CpuBackend(threads)) {
            InferenceModel m = InferenceModel.load(Fixtures.tinyLlamaGptq().toString(),
                    Fixtures.tinyLlamaAdapter().toString(), be, HadoopPaths.defaults());
            return m.generator().generate(GenerationTest.prompts(17, 4, 6, 3),
                    new Generator.Settings(16, -1, new Sampling(0.8, 0.9, 2024), 3), null);
        }
    }

    public static void main(String[] args) {
        for (int[] tokens : sample(Integer.parseInt(args[0]))) {
            System.out.println("tokens " + Arrays.toString(tokens));
        }
    }
}
