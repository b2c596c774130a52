package org.qalora.worker.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;
import org.qalora.worker.train.AdapterState;
import org.qalora.worker.train.AdapterStateFiles;

class PeftAdapterTest {
    @TempDir
    Path tmp;

    @Test
    void readsTheFixtureAdapter() {
        PeftAdapter a = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
        assertEquals(new QaloraConfig(8, 16, 32, Pooling.MEAN, 0.0, EnumSet.allOf(Projection.class)), a.config());
        assertEquals(28, a.weights().size());
        assertEquals(8 * 4, a.weights().get(PeftKeys.a(0, Projection.Q)).length); // [r, 128/32]
        assertEquals(2.0, a.config().scaling());
    }

    @Test
    void missingPoolingMeansPeftAndUnknownPoolingIsRefused() throws Exception {
        String base = "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"],"
                + "\"use_qalora\":true,\"qalora_group_size\":32";
        assertEquals(Pooling.PEFT, PeftAdapter.parseConfig(base + "}", "x").pooling());
        assertEquals(Pooling.SUM, PeftAdapter.parseConfig(base + ",\"qalora_pooling\":\"sum\"}", "x").pooling());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PeftAdapter.parseConfig(base + ",\"qalora_pooling\":\"max\"}", "cfg.json"));
        assertTrue(e.getMessage().contains("cfg.json") && e.getMessage().contains("max"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PeftAdapter.parseConfig(
                base.replace("q_proj", "qkv_proj") + "}", "cfg.json"));
        assertTrue(e.getMessage().contains("qkv_proj"), e.getMessage());
        QaloraConfig lora = PeftAdapter.parseConfig(base.replace("true", "false") + "}", "cfg.json");
        assertTrue(lora.plainLora(), "use_qalora false is a plain LoRA adapter");
        assertEquals(1, lora.groupSize());
        e = assertThrows(IllegalArgumentException.class,
                () -> PeftAdapter.parseConfig(base + ",\"qalora_pooling\":\"none\"}", "cfg.json"));
        assertTrue(e.getMessage().contains("'none' is unknown"), "none is not a QA-LoRA pooling: " + e.getMessage());
    }

    @Test
    void aPlainLoraAdapterRoundTripsAndIsRefusedOnAQuantizedModel() throws Exception {
        QaloraConfig lora = QaloraConfig.lora(4, 8, 0.05);
        String json = PeftAdapter.configJson(lora, "/m");
        assertTrue(json.contains("\"use_qalora\" : false") && !json.contains("qalora_group_size"), json);
        assertEquals(lora, PeftAdapter.parseConfig(json, "x"));
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel gptq = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AdapterState.initial(gptq, lora, 1));
            assertTrue(e.getMessage().contains("plain LoRA (--method lora) trains a float base"), e.getMessage());
            LlamaModel dense = LlamaModel.load(Fixtures.tinyLlama().toString(), be);
            AdapterState s = AdapterState.initial(dense, lora, 1);
            assertArrayEquals(new long[] {4, 128}, s.shape(PeftKeys.a(0, Projection.Q)), "A [r, in]");
            float bound = (float) (1 / Math.sqrt(128));
            float max = 0;
            for (float v : s.weights(PeftKeys.a(0, Projection.Q))) {
                max = Math.max(max, Math.abs(v));
            }
            assertTrue(max <= bound && max > 0.9f * bound, "PEFT's LoRA init U(-1/sqrt(in), 1/sqrt(in)): " + max);
            String dir = tmp.resolve("lora").toString();
            s.writePeft(dir, Fixtures.tinyLlama().toString());
            PeftAdapter back = PeftAdapter.read(dir);
            assertEquals(lora, back.config());
            assertArrayEquals(s.weights(PeftKeys.a(1, Projection.DOWN)), back.weights().get(PeftKeys.a(1, Projection.DOWN)));
        }
    }

    @Test
    void adapterThatDoesNotFitTheModelIsRefused() {
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel m = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
            PeftAdapter a = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
            QaloraConfig g64 = new QaloraConfig(8, 16, 64, Pooling.MEAN, 0, a.config().targets());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> QaloraAdapter.create(m, g64, a.weights(), false));
            assertTrue(e.getMessage().contains("group size"), e.getMessage());
            QaloraConfig r4 = new QaloraConfig(4, 16, 32, Pooling.MEAN, 0, a.config().targets());
            e = assertThrows(IllegalArgumentException.class, () -> QaloraAdapter.create(m, r4, a.weights(), false));
            assertTrue(e.getMessage().contains("lora_A"), e.getMessage());
            QaloraConfig qOnly = new QaloraConfig(8, 16, 32, Pooling.MEAN, 0, EnumSet.of(Projection.Q));
            e = assertThrows(IllegalArgumentException.class, () -> QaloraAdapter.create(m, qOnly, a.weights(), false));
            assertTrue(e.getMessage().contains("do not match any target"), e.getMessage());
        }
    }

    @Test
    void adapterStateAndPeftDirectoryRoundTrip() {
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel m = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
            QaloraConfig cfg = new QaloraConfig(4, 8, 32, Pooling.SUM, 0.1, EnumSet.of(Projection.Q, Projection.DOWN));
            AdapterState s = AdapterState.initial(m, cfg, 5);
            assertEquals(2 * 2 * 2, s.keys().size());
            assertEquals(PeftKeys.a(0, Projection.Q), s.keys().get(0));
            assertArrayEquals(new long[] {4, 384 / 32}, s.shape(PeftKeys.a(1, Projection.DOWN)));
            String file = tmp.resolve("state.safetensors").toString();
            AdapterStateFiles.write(s, file);
            AdapterState back = AdapterStateFiles.read(file);
            assertEquals(s.keys(), back.keys());
            assertEquals(cfg, back.config());
            for (String k : s.keys()) {
                assertArrayEquals(s.weights(k), back.weights(k), 0f);
            }
            Map<String, float[]> ms = new java.util.HashMap<>(), vs = new java.util.HashMap<>();
            for (String k : s.keys()) {
                ms.put(k, s.weights(k));
                vs.put(k, s.weights(k));
            }
            AdapterState withMoments = AdapterState.of(m.dims(), cfg, s.weightMap(), ms, vs, 7);
            assertEquals(7, withMoments.step());
            assertArrayEquals(s.weights(s.keys().get(3)), withMoments.adamV(s.keys().get(3)), 0f);
            ms.remove(s.keys().get(0));
            assertThrows(IllegalArgumentException.class, () -> AdapterState.of(m.dims(), cfg, s.weightMap(), ms, vs, 7));
            s.writePeft(tmp.resolve("peft").toString(), "base");
            assertTrue(Files.isRegularFile(tmp.resolve("peft/adapter_config.json")));
            PeftAdapter p = PeftAdapter.read(tmp.resolve("peft").toString());
            assertEquals(cfg, p.config());
            for (Map.Entry<String, float[]> e : p.weights().entrySet()) {
                assertArrayEquals(s.weights(e.getKey()), e.getValue(), 0f);
            }
        }
    }
}
