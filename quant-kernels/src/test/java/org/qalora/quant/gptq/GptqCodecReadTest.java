package org.qalora.quant.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;

/** Decodes the fixture's GPTQ v1 checkpoint and checks it against numpy's decoding and the original weights. */
class GptqCodecReadTest {
    static final List<String> PROJECTIONS = List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj");

    @Test
    void decodesKnownValues() throws IOException {
        try (Checkpoint ckpt = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            QuantizedMatrix m = GptqCodec.read(ckpt, "model.layers.1.mlp.down_proj");
            assertEquals(128, m.outFeatures());
            assertEquals(384, m.inFeatures());
            assertEquals(12, m.groups());
            // Expected numbers decoded independently with numpy (v1: stored zero + 1).
            int[] codes = m.codes(); // [out, in]
            assertArrayEquals(new int[] {8, 12, 2, 0, 6, 7, 10, 5}, Arrays.copyOf(codes, 8));
            assertArrayEquals(new float[] {7, 9, 9, 7, 7, 10, 9, 7}, Arrays.copyOf(m.zeros(), 8));
            assertArrayEquals(new float[] {0.0178985595703125f, 0.01132965087890625f, 0.01081085205078125f},
                    Arrays.copyOf(m.scales(), 3));
            double sum = 0;
            for (float w : m.dequantize()) {
                sum += w;
            }
            assertEquals(-4.9772186279296875, sum, 1e-4);
        }
    }

    /** Through the Hadoop FileSystem API (a file:// URI, streamed rather than mapped) the same matrices come back. */
    @Test
    void readsThroughHadoopStreams() throws IOException {
        org.qalora.quant.io.HadoopPaths streaming =
                new org.qalora.quant.io.HadoopPaths(new org.apache.hadoop.conf.Configuration(), false);
        try (Checkpoint mapped = Checkpoint.open(Fixtures.tinyLlamaGptq().toString());
             Checkpoint streamed = Checkpoint.open(Fixtures.tinyLlamaGptq().toUri().toString(), streaming)) {
            for (String proj : PROJECTIONS) {
                String prefix = "model.layers.1." + proj;
                assertEquals(GptqCodec.read(mapped, prefix), GptqCodec.read(streamed, prefix), prefix);
            }
        }
    }

    /**
     * Round-to-nearest error bound: every dequantized weight is within half a step of the bf16 original, except at
     * the ends of the code range, where the integer zero point can push the range edge inward by up to half a
     * step, so a clamped weight may be off by up to one step.
     */
    @Test
    void everyProjectionDequantizesCloseToTheOriginal() throws IOException {
        try (Checkpoint gptq = Checkpoint.open(Fixtures.tinyLlamaGptq().toString());
             Checkpoint dense = Checkpoint.open(Fixtures.tinyLlama().toString())) {
            for (int layer = 0; layer < 2; layer++) {
                for (String proj : PROJECTIONS) {
                    String prefix = "model.layers." + layer + "." + proj;
                    QuantizedMatrix m = GptqCodec.read(gptq, prefix);
                    float[] original = dense.floats(prefix + ".weight"); // [out, in]
                    float[] deq = m.dequantize();
                    int[] codes = m.codes();
                    assertEquals(original.length, deq.length);
                    for (int o = 0; o < m.outFeatures(); o++) {
                        for (int i = 0; i < m.inFeatures(); i++) {
                            float step = m.scale(i / m.groupSize(), o);
                            float err = Math.abs(deq[o * m.inFeatures() + i] - original[o * m.inFeatures() + i]);
                            int code = codes[o * m.inFeatures() + i];
                            float bound = code == 0 || code == m.maxCode() ? step : step * 0.5f;
                            assertTrue(err <= bound * 1.001f, prefix + " (" + o + "," + i + ") err " + err);
                        }
                    }
                }
            }
        }
    }
}
