package org.qalora.worker.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;

/** Loading checks: contradicting quantization config, non-finite weights, tied embeddings, the activation hook. */
class ModelLoaderTest {
    private static final CpuBackend BE = new CpuBackend(2);
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @AfterAll
    static void close() { BE.close(); }

    /** Copies a fixture checkpoint, editing config.json and replacing tensors through {@code edit}. */
    private Path copy(Path from, Function<ObjectNode, ObjectNode> config, String dropTensor, String nanTensor)
            throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("m" + System.nanoTime()));
        ObjectNode cfg = (ObjectNode) JSON.readTree(from.resolve("config.json").toFile());
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config.apply(cfg)));
        SafetensorsWriter w = new SafetensorsWriter();
        try (Checkpoint ck = Checkpoint.open(from.toString())) {
            for (String name : ck.names()) {
                if (name.equals(dropTensor)) {
                    continue;
                }
                if (name.equals(nanTensor)) {
                    float[] v = ck.floats(name);
                    v[3] = Float.NaN;
                    w.addFloats(name, DType.F32, v, ck.info(name).shape());
                } else {
                    w.copy(ck, name);
                }
            }
        }
        w.write(dir.resolve("model.safetensors").toString());
        return dir;
    }

    @Test
    void quantizationConfigThatContradictsTheTensorsIsRefused() throws IOException {
        Path noQuantConfig = copy(Fixtures.tinyLlamaGptq(), c -> {
            c.remove("quantization_config");
            return c;
        }, null, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LlamaModel.load(noQuantConfig.toString(), BE));
        assertTrue(e.getMessage().contains("model.layers.0.self_attn.q_proj") && e.getMessage().contains("contradicts"),
                e.getMessage());
        Path denseClaimingGptq = copy(Fixtures.tinyLlama(), c -> {
            c.set("quantization_config", JSON.createObjectNode().put("quant_method", "gptq").put("bits", 4)
                    .put("group_size", 32).put("desc_act", false).put("sym", false));
            return c;
        }, null, null);
        e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(denseClaimingGptq.toString(), BE));
        assertTrue(e.getMessage().contains("declares GPTQ"), e.getMessage());
    }

    @Test
    void biasedProjectionsAreRefused() throws IOException {
        Path dir = copy(Fixtures.tinyLlama(), c -> c.put("attention_bias", true), null, null);
        RuntimeException e = assertThrows(RuntimeException.class, () -> LlamaModel.load(dir.toString(), BE));
        assertTrue(e.getMessage().contains("attention_bias"), e.getMessage());
        Path biasTensor = copy(Fixtures.tinyLlama(), c -> c, null, null);
        SafetensorsWriter w = new SafetensorsWriter();
        try (Checkpoint ck = Checkpoint.open(biasTensor.toString())) {
            for (String name : ck.names()) {
                w.copy(ck, name);
            }
        }
        float[] bias = new float[128];
        bias[5] = 0.5f;
        w.addFloats("model.layers.0.self_attn.o_proj.bias", DType.F32, bias, 128);
        Files.delete(biasTensor.resolve("model.safetensors"));
        w.write(biasTensor.resolve("model.safetensors").toString());
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class,
                () -> LlamaModel.load(biasTensor.toString(), BE));
        assertTrue(b.getMessage().contains("model.layers.0.self_attn.o_proj.bias"), b.getMessage());
    }

    @Test
    void nonFiniteWeightIsNamed() throws IOException {
        Path dir = copy(Fixtures.tinyLlama(), c -> c, null, "model.layers.1.post_attention_layernorm.weight");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(dir.toString(), BE));
        assertTrue(e.getMessage().contains("model.layers.1.post_attention_layernorm.weight")
                && e.getMessage().contains("NaN"), e.getMessage());
    }

    @Test
    void tiedEmbeddingsUseTheEmbeddingAsLmHead() throws IOException {
        Path tied = copy(Fixtures.tinyLlama(), c -> c.put("tie_word_embeddings", true), "lm_head.weight", null);
        LlamaModel m = LlamaModel.load(tied.toString(), BE);
        assertTrue(m.dims().tiedEmbeddings());
        int[] ids = {1, 5, 9, 300};
        ActivationPlan plan = new ActivationPlan(m, null, 1, 4, false, false);
        LlamaPass.forward(m, null, plan, ids, 0, null);
        float[] logits = LlamaPass.logits(m, plan);
        // logit v of the last position = final hidden . embedding row v
        float[] hidden = BE.download(plan.finalOut), emb = BE.download(m.embedding());
        int h = m.dims().hidden(), last = 3;
        for (int v : new int[] {0, 17, 511}) {
            double dot = 0;
            for (int i = 0; i < h; i++) {
                dot += (double) hidden[last * h + i] * emb[v * h + i];
            }
            assertEquals(dot, logits[last * 512 + v], 1e-4);
        }
    }

    @Test
    void observerSeesEveryProjectionInput() {
        LlamaModel m = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), BE);
        List<String> seen = new ArrayList<>();
        List<float[]> qkv = new ArrayList<>();
        ActivationPlan plan = new ActivationPlan(m, null, 1, 6, false, true);
        LlamaPass.forward(m, null, plan, new int[] {1, 2, 3, 4, 5, 6}, 0, (layer, p, x, tokens, in) -> {
            seen.add(layer + "." + p.shortName() + "[" + tokens + "," + in + "]");
            assertEquals(tokens * in, x.length);
            if (layer == 0 && (p == Projection.Q || p == Projection.K || p == Projection.V)) {
                qkv.add(x);
            }
        });
        assertEquals(14, seen.size());
        assertEquals("0.q_proj[6,128]", seen.get(0));
        assertTrue(seen.contains("1.down_proj[6,384]"), seen.toString());
        assertArrayEquals(qkv.get(0), qkv.get(2), 0f);
    }

    @Test
    void llama3RopeKeepsHighFrequenciesAndDividesLowOnes() {
        RopeParams p = RopeParams.llama3(500000, 8, 1, 4, 8192);
        double[] plain = RopeParams.plain(500000).inverseFrequencies(128), scaled = p.inverseFrequencies(128);
        assertEquals(plain[0], scaled[0], 0.0);                 // wavelength 2 pi << 8192/4: unchanged
        assertEquals(plain[63] / 8, scaled[63], 1e-18);         // wavelength >> 8192: divided by the factor
        for (int i = 0; i < 64; i++) {
            assertTrue(scaled[i] <= plain[i] && scaled[i] >= plain[i] / 8 * (1 - 1e-12));
        }
    }
}
