package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;

/** The checks and generated inputs before any training: run directory claim, vocabulary fit, demo model. */
class RunSetupTest {
    @TempDir
    Path dir;

    @Test
    void aDirectoryOfAnotherRunIsRefusedNamingTheDifference() {
        Storage storage = new Storage(new Configuration());
        TrainJob a = TrainJobLoader.build("t", TrainJobLoader.defaults("/r"), Map.of("output", dir.toString()));
        TrainJob b = TrainJobLoader.build("t", TrainJobLoader.defaults("/r"), Map.of("output", dir.toString(), "rank", 4));
        RunDirectory run = new RunDirectory(storage, dir.toString());
        assertFalse(run.claim(a), "first claim: a new run");
        assertTrue(run.claim(a), "same settings: a resume");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> run.claim(b));
        assertTrue(e.getMessage().contains("different configuration (rank: was 8, now 4)"), e.getMessage());
    }

    @Test
    void aResumeOnAnotherDeviceOrPrecisionIsRefused() {
        Storage storage = new Storage(new Configuration());
        Map<String, Object> d = TrainJobLoader.defaults("/r");
        TrainJob a = TrainJobLoader.build("t", d, Map.of("output", dir.toString()));
        RunDirectory run = new RunDirectory(storage, dir.toString());
        assertFalse(run.claim(a));
        IllegalStateException dev = assertThrows(IllegalStateException.class,
                () -> run.claim(TrainJobLoader.build("t", d, Map.of("output", dir.toString(), "device", "gpu"))));
        assertTrue(dev.getMessage().contains("different configuration (device: was auto, now gpu)"), dev.getMessage());
        IllegalStateException prec = assertThrows(IllegalStateException.class, () -> run.claim(TrainJobLoader.build("t", d,
                Map.of("output", dir.toString(), "precision", "bf16", "recompute", true))));
        assertTrue(prec.getMessage().contains("precision: was auto, now bf16; recompute: was false, now true"),
                prec.getMessage());
    }

    @Test
    void aTokenizerLargerThanTheModelVocabularyIsRefused() throws Exception {
        byte[] big = Files.readAllBytes(Fixtures.tokenizer());
        assertEquals(32000, TokenizerVocabulary.size(big, "tokenizer.json"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TokenizerVocabulary.checkFits(big, "tokenizer.json", 512, "tiny-llama"));
        assertTrue(e.getMessage().contains("produces ids up to 31999 but model tiny-llama has vocab_size 512"),
                e.getMessage());
        TokenizerVocabulary.checkFits(big, "tokenizer.json", 32000, "demo");
    }

    @Test
    void theDemoModelIsAValidRandomCheckpointWithTheBundledVocabulary() throws Exception {
        HadoopPaths paths = HadoopPaths.defaults();
        String model = dir.resolve("demo").toString();
        DemoModel.ensure(model, 42, Fixtures.tokenizer().getParent(), paths);
        LlamaConfig config = LlamaConfig.read(model, paths);
        assertEquals(32000, config.vocabSize());
        assertFalse(config.isQuantized());
        TokenizerVocabulary.checkFits(Files.readAllBytes(dir.resolve("demo/tokenizer.json")), "demo tokenizer",
                config.vocabSize(), model);
        try (Checkpoint c = Checkpoint.open(model, paths)) {
            assertEquals(2 + 9 * DemoModel.LAYERS + 1, c.names().size());
            float[] emb = c.floats("model.embed_tokens.weight");
            double sq = 0;
            for (float x : emb) {
                sq += x * x;
            }
            assertEquals(0.02, Math.sqrt(sq / emb.length), 0.002, "normal(0, 0.02) init");
        }
        // Deterministic in the seed, and generated once.
        byte[] first = Files.readAllBytes(dir.resolve("demo/model.safetensors"));
        DemoModel.ensure(model, 42, Fixtures.tokenizer().getParent(), paths);
        assertEquals(java.util.Arrays.hashCode(first), java.util.Arrays.hashCode(Files.readAllBytes(dir.resolve("demo/model.safetensors"))));
        String other = dir.resolve("demo2").toString();
        DemoModel.ensure(other, 42, Fixtures.tokenizer().getParent(), paths);
        assertTrue(java.util.Arrays.equals(first, Files.readAllBytes(dir.resolve("demo2/model.safetensors"))));
    }
}
