package org.qalora.quant.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.config.GptqConfig.CheckpointFormat;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;

class LlamaConfigTest {
    @Test
    void readsTheTransformersV5FixtureConfig() throws IOException {
        LlamaConfig c = LlamaConfig.read(Fixtures.tinyLlama().toString());
        assertEquals(512, c.vocabSize());
        assertEquals(128, c.hiddenSize());
        assertEquals(384, c.intermediateSize());
        assertEquals(2, c.numHiddenLayers());
        assertEquals(4, c.numAttentionHeads());
        assertEquals(2, c.numKeyValueHeads());
        assertEquals(2, c.groupsPerKvHead());
        assertEquals(32, c.headDim());
        assertEquals(1e-5, c.rmsNormEps());
        assertEquals(10000.0, c.ropeTheta());
        assertNull(c.ropeScaling());
        assertFalse(c.tieWordEmbeddings());
        assertEquals(512, c.maxPositionEmbeddings());
        assertEquals(1, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
        assertNull(c.padTokenId());
        assertNull(c.quantization());
    }

    @Test
    void readsTheGptqFixtureQuantizationConfig() throws IOException {
        GptqConfig q = LlamaConfig.read(Fixtures.tinyLlamaGptq().toString()).quantization();
        assertEquals(new GptqConfig(4, 32, false, false, false, 0.01, true, CheckpointFormat.GPTQ), q);
    }

    @Test
    void readsTransformersV4StyleWithLlama3RopeScaling() throws FormatException {
        String json = """
                {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
                 "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": false,
                 "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
                 "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"}}""";
        LlamaConfig c = LlamaConfig.parse(json, "config.json", null);
        assertEquals(128, c.headDim());
        assertEquals(500000.0, c.ropeTheta());
        assertEquals(new RopeScaling(8.0, 1.0, 4.0, 8192), c.ropeScaling());
        assertEquals(List.of(128001, 128008, 128009), c.eosTokenIds());
        assertEquals(4, c.groupsPerKvHead());
    }

    @Test
    void readsV5RopeParametersWithLlama3Scaling() throws FormatException {
        String json = """
                {"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                 "num_attention_heads": 4, "rms_norm_eps": 1e-06, "tie_word_embeddings": true,
                 "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                   "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}""";
        LlamaConfig c = LlamaConfig.parse(json, "config.json", null);
        assertEquals(4, c.numKeyValueHeads());
        assertEquals(16, c.headDim());
        assertEquals(500000.0, c.ropeTheta());
        assertEquals(32.0, c.ropeScaling().factor());
        assertTrue(c.tieWordEmbeddings());
    }

    @Test
    void errorsNameTheFileAndTheField() {
        String missing = "{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                + " \"rms_norm_eps\": 1e-5}";
        FormatException e = assertThrows(FormatException.class, () -> LlamaConfig.parse(missing, "/m/config.json", null));
        assertTrue(e.getMessage().contains("/m/config.json") && e.getMessage().contains("intermediate_size"), e.getMessage());

        String bias = "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1,"
                + " \"num_attention_heads\": 2, \"rms_norm_eps\": 1e-5, \"attention_bias\": true}";
        e = assertThrows(FormatException.class, () -> LlamaConfig.parse(bias, "config.json", null));
        assertTrue(e.getMessage().contains("attention_bias"), e.getMessage());

        String gelu = bias.replace("\"attention_bias\": true", "\"hidden_act\": \"gelu\"");
        e = assertThrows(FormatException.class, () -> LlamaConfig.parse(gelu, "config.json", null));
        assertTrue(e.getMessage().contains("silu"), e.getMessage());

        String yarn = bias.replace("\"attention_bias\": true", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}");
        e = assertThrows(FormatException.class, () -> LlamaConfig.parse(yarn, "config.json", null));
        assertTrue(e.getMessage().contains("yarn"), e.getMessage());
    }

    @Test
    void fallsBackToQuantizeConfigJsonAndWritesBoth(@TempDir Path dir) throws IOException {
        String base = Files.readString(Fixtures.tinyLlama().resolve("config.json"));
        Files.writeString(dir.resolve("config.json"), base);
        Files.writeString(dir.resolve("quantize_config.json"),
                "{\"bits\": 3, \"group_size\": 64, \"desc_act\": false, \"sym\": true, \"damp_percent\": 0.01}");
        LlamaConfig c = LlamaConfig.read(dir.toString());
        assertEquals(3, c.quantization().bits());
        assertEquals(64, c.quantization().groupSize());
        assertEquals(CheckpointFormat.GPTQ, c.quantization().format()); // absent = v1, as every AutoGPTQ file

        GptqConfig v2 = GptqConfig.of(2, 32);
        Path out = dir.resolve("out");
        c.withQuantization(v2).write(out.toString(), HadoopPaths.defaults());
        LlamaConfig back = LlamaConfig.read(out.toString());
        assertEquals(v2, back.quantization());
        assertEquals(c.hiddenSize(), back.hiddenSize());
        assertTrue(Files.readString(out.resolve("config.json")).contains("\"transformers_version\""));
        assertEquals(v2, GptqConfig.fromJson(new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(out.resolve("quantize_config.json").toFile()), "quantize_config.json"));
    }
}
