package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.testing.Fixtures;

/**
 * The kernels on the real tiny-llama GPTQ checkpoint (4 bits, g32) and its QA-LoRA merge from the fixtures:
 * every projection of both layers, and the merged zeros the HF oracle computed.
 */
class FixtureKernelsTest {
    private static final String[] PROJECTIONS = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    private static final int TOKENS = 17;

    private final VectorQuantKernels fast = new VectorQuantKernels(new KernelPool(2));
    private final ReferenceQuantKernels reference = new ReferenceQuantKernels();
    private final ReferenceDenseKernels dense = new ReferenceDenseKernels();

    @Test
    void everyProjectionOfTheCheckpointMatchesTheReference() throws IOException {
        Random random = new Random(21);
        try (Checkpoint checkpoint = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            for (int layer = 0; layer < 2; layer++) {
                for (String projection : PROJECTIONS) {
                    String prefix = "model.layers." + layer + "." + projection;
                    QuantizedMatrix m = GptqCodec.read(checkpoint, prefix);
                    assertEquals(4, m.bits(), prefix);
                    PreparedWeight w = fast.prepare(m);
                    float[] weight = new float[m.outFeatures() * m.inFeatures()]; // [O, I]
                    fast.dequantize(w, weight);
                    assertArrayEquals(m.dequantize(), weight, prefix);

                    float[] x = KernelTestData.randomFloats(random, TOKENS * m.inFeatures()); // [T, I]
                    float[] expected = new float[TOKENS * m.outFeatures()]; // [T, O]
                    float[] actual = new float[expected.length];
                    float[] magnitude = new float[expected.length];
                    reference.matmul(reference.prepare(m), x, 0, TOKENS, expected, 0);
                    fast.matmul(w, x, 0, TOKENS, actual, 0);
                    dense.matmulNT(ErrorBound.abs(x), 0, TOKENS, m.inFeatures(), ErrorBound.abs(weight), 0,
                            m.outFeatures(), magnitude, 0, false);
                    ErrorBound.assertWithin(expected, actual, magnitude, m.inFeatures(), prefix);
                }
            }
        }
    }

    /**
     * QA-LoRA's promise, through {@link QuantKernels#withZeros}: the base weight with the oracle's merged zeros
     * computes {@code W x + (alpha/r) B A pool(x)} (pool = mean over each group of 32 inputs, alpha/r = 2), i.e.
     * the adapter model's projection.
     */
    @Test
    void mergedZerosReproduceTheAdapterProjection() throws IOException {
        Random random = new Random(22);
        String adapter = Fixtures.tinyLlamaAdapter().resolve("adapter_model.safetensors").toString();
        try (Checkpoint checkpoint = Checkpoint.open(Fixtures.tinyLlamaGptq().toString());
             SafetensorsFile adapters = SafetensorsFile.open(adapter);
             SafetensorsFile oracle = SafetensorsFile.open(Fixtures.reference().toString())) {
            for (String projection : PROJECTIONS) {
                String prefix = "model.layers.1." + projection;
                QuantizedMatrix m = GptqCodec.read(checkpoint, prefix);
                int in = m.inFeatures();
                int out = m.outFeatures();
                int groups = m.groups();
                float[] a = adapters.floats("base_model.model." + prefix + ".lora_A.weight"); // [r, I/32]
                float[] b = adapters.floats("base_model.model." + prefix + ".lora_B.weight"); // [O, r]
                int rank = a.length / groups;
                float[] mergedZeros = oracle.floats("gptq-4bit-g32-qalora.merged_zeros." + prefix); // [G, O]

                PreparedWeight base = fast.prepare(m);
                PreparedWeight merged = fast.withZeros(base, mergedZeros);
                float[] x = KernelTestData.randomFloats(random, TOKENS * in); // [T, I]
                float[] y = new float[TOKENS * out]; // [T, O]
                fast.matmul(merged, x, 0, TOKENS, y, 0);
                float[] baseY = new float[TOKENS * out];
                fast.matmul(base, x, 0, TOKENS, baseY, 0);

                float[] weight = m.dequantize(); // [O, I]
                for (int t = 0; t < TOKENS; t++) {
                    double[] pooled = new double[groups]; // [G]: mean of x over each group
                    for (int i = 0; i < in; i++) {
                        pooled[i / m.groupSize()] += x[t * in + i] / (double) m.groupSize();
                    }
                    double[] down = new double[rank]; // [r] = A pool(x)
                    for (int r = 0; r < rank; r++) {
                        for (int g = 0; g < groups; g++) {
                            down[r] += a[r * groups + g] * pooled[g];
                        }
                    }
                    for (int o = 0; o < out; o++) {
                        double lora = 0;
                        for (int r = 0; r < rank; r++) {
                            lora += b[o * rank + r] * down[r];
                        }
                        double magnitude = 2 * Math.abs(lora);
                        for (int i = 0; i < in; i++) {
                            magnitude += Math.abs(x[t * in + i] * weight[o * in + i]);
                        }
                        double expected = baseY[t * out + o] + 2.0 * lora;
                        // The merged zeros are float32 (rounded once by the oracle) and scale * (q - z') is
                        // rounded per weight: allow a few float ulps of every term, summed.
                        double bound = 64 * ErrorBound.UNIT_ROUNDOFF * magnitude + 1e-6 * Math.abs(lora);
                        assertEquals(expected, y[t * out + o], bound, prefix + " token " + t + " output " + o);
                    }
                }
            }
        }
    }
}
