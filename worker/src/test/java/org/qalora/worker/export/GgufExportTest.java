package org.qalora.worker.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gguf.GgmlType;
import org.qalora.quant.gguf.GgufFile;
import org.qalora.quant.gguf.GgufMetadata;
import org.qalora.quant.gguf.Half;
import org.qalora.quant.gguf.Q41Blocks;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Q41Check;
import org.qalora.worker.model.Projection;

/**
 * The merged fixture model (real-valued zeros from the fixture QA-LoRA adapter) exported and read back with our own
 * GGUF reader: every projection's d q + m against S (q - Z') within the fp16 bound of m, dense tensors within the
 * fp16 bound of each value, norms bit-exact, the llama metadata, and the check failing on a corrupted block.
 */
class GgufExportTest {
    @TempDir
    static Path dir;
    static Path model;
    static Path gguf;
    static String printed;

    @BeforeAll
    static void export() throws IOException {
        model = ExportFixtures.merged(dir);
        gguf = dir.resolve("out/model.gguf");
        ExportFixtures.Run r = ExportFixtures.export("--model", model.toString(), "--format", "gguf", "--out", gguf.toString());
        assertEquals(0, r.code(), r.err());
        printed = r.out();
    }

    @Test
    void everyProjectionIsTheMergedMatrixUpToTheRoundingOfM() throws IOException {
        GgufFile f = GgufFile.open(gguf.toString(), HadoopPaths.defaults());
        double maxError = 0, worst = 0;
        boolean realZeros = false;
        try (Checkpoint ck = Checkpoint.open(model.toString())) {
            LlamaConfig c = ck.config();
            for (int l = 0; l < c.numHiddenLayers(); l++) {
                for (Projection p : Projection.values()) {
                    QuantizedMatrix q = GptqCodec.read(ck, p.prefix(l));
                    realZeros |= !q.hasIntegerZeros();
                    String name = ExportPlan.tensorName(l, p);
                    assertEquals(GgmlType.Q4_1, f.tensor(name).type());
                    assertArrayEquals(new long[] {q.inFeatures(), q.outFeatures()}, f.tensor(name).dims());
                    Q41Check.Result r = Q41Check.compare(q, f.bytes(name), RopeRowOrder.of(p, c));
                    assertTrue(r.holds(), name + ": " + r);
                    maxError = Math.max(maxError, r.maxError());
                    worst = Math.max(worst, r.worstRatio());
                }
            }
        }
        assertTrue(realZeros, "the fixture merge must give real-valued zeros, else this test proves less");
        System.out.printf(Locale.ROOT, "GgufExportTest: Q4_1 projections of the merged fixture: max |d q + m - S (q - Z')|"
                + " = %.3g, %.3f of the fp16 bound%n", maxError, worst);
        assertTrue(maxError > 0, "m = -S Z' of real-valued zeros is not a half in general: some rounding must show");
        assertTrue(printed.contains(String.format(Locale.ROOT, "max |error| %.3g", maxError)), printed);
        assertTrue(printed.contains("warning: 20 merge pairs"), "the shrunk tiny tokenizer's gaps are reported: " + printed);
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "{0}-bit codes, groups of {1}")
    @org.junit.jupiter.params.provider.CsvSource({"2, 64", "3, 128", "4, -1"})
    void lowerBitsAndLargerGroupsBecomeRepeatedQ41Blocks(int bits, int group) throws IOException {
        // zeros moved off the integers by a third of a step, as a merge would
        Path m = ExportFixtures.quantized(dir, "rtn-" + bits + "-" + group, bits, group, z -> {
            for (int i = 0; i < z.length; i++) {
                z[i] += (i % 7 - 3) / 9f;
            }
            return z;
        });
        Path out = dir.resolve("rtn-" + bits + "-" + group + ".gguf");
        assertEquals(0, ExportFixtures.export("--model", m.toString(), "--format", "gguf", "--out", out.toString()).code());
        GgufFile f = GgufFile.open(out.toString(), HadoopPaths.defaults());
        try (Checkpoint ck = Checkpoint.open(m.toString())) {
            LlamaConfig c = ck.config();
            for (int l = 0; l < c.numHiddenLayers(); l++) {
                for (Projection p : Projection.values()) {
                    QuantizedMatrix q = GptqCodec.read(ck, p.prefix(l));
                    assertEquals(bits, q.bits());
                    String name = ExportPlan.tensorName(l, p);
                    Q41Check.Result r = Q41Check.compare(q, f.bytes(name), RopeRowOrder.of(p, c));
                    assertTrue(r.holds(), name + ": " + r);
                }
            }
        }
    }

    @Test
    void aDenseModelBecomesF16WithTheSameRowOrder() throws IOException {
        Path out = dir.resolve("dense.gguf");
        String dense = org.qalora.quant.testing.Fixtures.tinyLlama().toString();
        ExportFixtures.Run r = ExportFixtures.export("--model", dense, "--format", "gguf", "--out", out.toString(),
                "--tokenizer", ExportFixtures.tinyTokenizer().toString());
        assertEquals(0, r.code(), r.err());
        GgufFile f = GgufFile.open(out.toString(), HadoopPaths.defaults());
        assertEquals(1, f.metadata().integer("general.file_type"), "MOSTLY_F16");
        try (Checkpoint ck = Checkpoint.open(dense)) {
            LlamaConfig c = ck.config();
            for (Projection p : Projection.values()) {
                String name = ExportPlan.tensorName(1, p);
                assertEquals(GgmlType.F16, f.tensor(name).type());
                float[] ours = ck.floats(p.prefix(1) + ".weight"), theirs = f.floats(name);
                int[] order = RopeRowOrder.of(p, c);
                int in = (int) f.tensor(name).dims()[0];
                for (int row = 0; row < theirs.length / in; row++) {
                    int src = order == null ? row : order[row];
                    for (int i = 0; i < in; i++) {
                        float w = ours[src * in + i];
                        assertTrue(Math.abs(theirs[row * in + i] - w) <= Half.bound(w), name + " row " + row);
                    }
                }
            }
        }
    }

    @Test
    void denseTensorsAreTheCheckpointsUpToHalfRounding() throws IOException {
        GgufFile f = GgufFile.open(gguf.toString(), HadoopPaths.defaults());
        try (Checkpoint ck = Checkpoint.open(model.toString())) {
            for (String[] pair : List.of(new String[] {"model.embed_tokens.weight", "token_embd.weight"},
                    new String[] {"lm_head.weight", "output.weight"})) {
                assertEquals(GgmlType.F16, f.tensor(pair[1]).type());
                float[] ours = ck.floats(pair[0]), theirs = f.floats(pair[1]);
                assertEquals(ours.length, theirs.length);
                for (int i = 0; i < ours.length; i++) {
                    assertTrue(Math.abs(theirs[i] - ours[i]) <= Half.bound(ours[i]), pair[1] + "[" + i + "]");
                }
            }
            LlamaConfig c = ck.config();
            for (int l = 0; l < c.numHiddenLayers(); l++) {
                assertArrayEquals(ck.floats("model.layers." + l + ".input_layernorm.weight"),
                        f.floats("blk." + l + ".attn_norm.weight"));
                assertArrayEquals(ck.floats("model.layers." + l + ".post_attention_layernorm.weight"),
                        f.floats("blk." + l + ".ffn_norm.weight"));
                assertEquals(GgmlType.F32, f.tensor("blk." + l + ".ffn_norm.weight").type());
            }
            assertArrayEquals(ck.floats("model.norm.weight"), f.floats("output_norm.weight"));
            assertEquals(1 + 9 * c.numHiddenLayers() + 2, f.tensors().size(), "token_embd, 9 per layer, output_norm and"
                    + " (untied) output");
        }
    }

    @Test
    void llamaMetadataMatchesConfig() throws IOException {
        GgufMetadata m = GgufFile.open(gguf.toString(), HadoopPaths.defaults()).metadata();
        LlamaConfig c = LlamaConfig.read(model.toString());
        assertEquals("llama", m.string("general.architecture"));
        assertEquals("merged", m.string("general.name"));
        assertEquals(3, m.integer("general.file_type"), "MOSTLY_Q4_1");
        assertEquals(c.maxPositionEmbeddings(), m.integer("llama.context_length"));
        assertEquals(c.hiddenSize(), m.integer("llama.embedding_length"));
        assertEquals(c.numHiddenLayers(), m.integer("llama.block_count"));
        assertEquals(c.intermediateSize(), m.integer("llama.feed_forward_length"));
        assertEquals(c.numAttentionHeads(), m.integer("llama.attention.head_count"));
        assertEquals(c.numKeyValueHeads(), m.integer("llama.attention.head_count_kv"));
        assertEquals((float) c.rmsNormEps(), m.float32("llama.attention.layer_norm_rms_epsilon"));
        assertEquals((float) c.ropeTheta(), m.float32("llama.rope.freq_base"));
        assertEquals(c.headDim(), m.integer("llama.rope.dimension_count"));
        assertEquals(c.vocabSize(), m.integer("llama.vocab_size"));
        assertEquals(GgufMetadata.ValueType.UINT32, m.value("llama.block_count").type(), "llama.cpp reads UINT32");
        assertEquals("llama", m.string("tokenizer.ggml.model"));
        assertEquals(c.vocabSize(), m.strings("tokenizer.ggml.tokens").size());
        assertEquals(1, m.integer("tokenizer.ggml.bos_token_id"));
        assertEquals(2, m.integer("tokenizer.ggml.eos_token_id"));
        assertEquals(0, m.integer("tokenizer.ggml.unknown_token_id"));
        assertFalse(m.contains("tokenizer.ggml.padding_token_id"), "the tokenizer has no pad token");
        assertTrue(m.bool("tokenizer.ggml.add_bos_token"));
        assertFalse(m.bool("tokenizer.ggml.add_eos_token"));
    }

    @Test
    void theCheckFailsOnACorruptedBlock() throws IOException {
        GgufFile f = GgufFile.open(gguf.toString(), HadoopPaths.defaults());
        String name = "blk.1.attn_v.weight";
        byte[] file = Files.readAllBytes(gguf);
        int block = 7, mAt = (int) (f.dataStart() + f.tensor(name).offset()) + block * Q41Blocks.BLOCK_BYTES + 2;
        short m = (short) ((file[mAt] & 0xFF) | (file[mAt + 1] << 8));
        short moved = (short) (m + 2);                      // two half steps: beyond any rounding of m
        file[mAt] = (byte) moved;
        file[mAt + 1] = (byte) (moved >>> 8);
        Path bad = dir.resolve("corrupt.gguf");
        Files.write(bad, file);
        try (Checkpoint ck = Checkpoint.open(model.toString())) {
            QuantizedMatrix q = GptqCodec.read(ck, Projection.V.prefix(1));
            Q41Check.Result r = Q41Check.compare(q, GgufFile.open(bad.toString(), HadoopPaths.defaults()).bytes(name), null);
            assertFalse(r.holds(), "a block two fp16 steps off passed: " + r);
            Q41Check.Result unpermuted = Q41Check.compare(GptqCodec.read(ck, Projection.K.prefix(0)),
                    f.bytes("blk.0.attn_k.weight"), null);
            assertFalse(unpermuted.holds(), "k_proj read without the RoPE row order must not match: " + unpermuted);
        }
    }
}
