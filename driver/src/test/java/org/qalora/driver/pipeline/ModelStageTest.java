package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;

class ModelStageTest {
    @TempDir
    Path dir;

    @Test
    void theDemoRunGeneratesAndQuantizesItsModelOnceAndReusesIt() throws Exception {
        List<String> log = new ArrayList<>();
        ModelStage stage = new ModelStage(HadoopPaths.defaults(), log::add);
        Path repo = Fixtures.root().getParent();
        ModelStage.Resolved r = stage.resolve(null, null, true, 4, 32, 42, dir.toString(), repo);
        assertEquals(dir.resolve("base-quantized").toString(), r.baseModel());
        assertTrue(r.config().isQuantized());
        assertEquals(4, r.config().quantization().bits());
        assertEquals(32, r.config().quantization().groupSize());
        assertTrue(Files.isRegularFile(dir.resolve("base-quantized/tokenizer.json")), "tokenizer copied with the model");
        assertTrue(log.get(0).startsWith("generating the demo model (random weights, NOT a trained model)"), log.toString());
        log.clear();
        stage.resolve(null, null, true, 4, 32, 42, dir.toString(), repo);
        assertEquals(List.of("quantize: reusing " + dir.resolve("base-quantized")), log);
    }

    @Test
    void aTokenizerTooLargeForTheModelIsRefusedBeforeAnyWork() {
        ModelStage stage = new ModelStage(HadoopPaths.defaults(), s -> {});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stage.resolve(
                Fixtures.tinyLlamaGptq().toString(), Fixtures.tokenizer().toString(), true, 4, 32, 1, dir.toString(),
                Fixtures.root().getParent()));
        assertTrue(e.getMessage().contains("has vocab_size 512"), e.getMessage());
        assertEquals(0, dir.toFile().list().length, "nothing written");
    }

    @Test
    void aMissingModelIsNamed() {
        ModelStage stage = new ModelStage(HadoopPaths.defaults(), s -> {});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stage.resolve(
                dir.resolve("nope").toString(), null, true, 4, 32, 1, dir.toString(), Fixtures.root().getParent()));
        assertTrue(e.getMessage().contains("--model " + dir.resolve("nope") + " does not exist"), e.getMessage());
    }

    @Test
    void plainLoraTrainsTheFloatModelAndRefusesAGptqOne() throws Exception {
        ModelStage stage = new ModelStage(HadoopPaths.defaults(), s -> {});
        String claim = Fixtures.root().resolveSibling("samples").resolve("claim/model").toString();
        ModelStage.Resolved r = stage.resolve(claim, null, false, 4, 32, 1, dir.toString(), Fixtures.root().getParent());
        assertEquals(claim, r.baseModel(), "no quantize stage for plain LoRA");
        assertTrue(!r.config().isQuantized());
        assertEquals(0, dir.toFile().list().length, "nothing written");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stage.resolve(
                Fixtures.tinyLlamaGptq().toString(), null, false, 4, 32, 1, dir.toString(), Fixtures.root().getParent()));
        assertTrue(e.getMessage().contains("--method lora trains plain LoRA on a float model")
                && e.getMessage().contains("4-bit GPTQ checkpoint"), e.getMessage());
    }
}
