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

    private TrainJob job(Object... keyValues) {
        Map<String, Object> flags = new java.util.LinkedHashMap<>();
        flags.put("output", dir.toString());
        for (int i = 0; i < keyValues.length; i += 2) {
            flags.put((String) keyValues[i], keyValues[i + 1]);
        }
        return TrainJobLoader.build("t", TrainJobLoader.defaults("/r"), flags);
    }

    /** What a run that committed {@code round} leaves: the manifest is what the directory check looks for. */
    private void committedRound(int round) throws Exception {
        Path rd = Files.createDirectories(dir.resolve(String.format("checkpoints/round-%05d", round)));
        Files.writeString(rd.resolve("_MANIFEST.json"), "{}");
    }

    @Test
    void aDirectoryOfAnotherRunIsRefusedNamingTheDifference() throws Exception {
        RunDirectory run = new RunDirectory(new Storage(new Configuration()), dir.toString());
        assertFalse(run.claim(job(), false), "first claim: a new run");
        assertTrue(run.claim(job(), false), "same settings: a resume");
        committedRound(1);
        String p = String.join("\n", run.problems(job("rank", 4), true));
        assertTrue(p.contains("different settings (rank: was 8, now 4) and 1 committed round(s); refusing to mix"), p);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> run.claim(job("rank", 4), true));
        assertEquals(p, e.getMessage(), "--force never discards committed training");
    }

    @Test
    void aResumeOnAnotherDeviceOrPrecisionIsRefused() throws Exception {
        RunDirectory run = new RunDirectory(new Storage(new Configuration()), dir.toString());
        assertFalse(run.claim(job(), false));
        committedRound(1);
        assertTrue(run.problems(job("device", "gpu"), false).get(0).contains("(device: was auto, now gpu)"));
        String prec = run.problems(job("precision", "bf16", "recompute", true), false).get(0);
        assertTrue(prec.contains("precision: was auto, now bf16; recompute: was false, now true"), prec);
    }

    @Test
    void anUnrelatedNonEmptyDirectoryIsUsedOnlyWithForce() throws Exception {
        Files.writeString(dir.resolve("notes.txt"), "mine");
        RunDirectory run = new RunDirectory(new Storage(new Configuration()), dir.toString());
        String p = String.join("\n", run.problems(job(), false));
        assertTrue(p.contains("is not empty and holds no qalora run (1 entry: notes.txt); use a new or empty "
                + "directory, or pass --force"), p);
        assertThrows(IllegalStateException.class, () -> run.claim(job(), false));
        assertFalse(Files.exists(dir.resolve("run.json")), "a refused claim writes nothing");
        assertFalse(run.claim(job(), true));
        assertEquals("mine", Files.readString(dir.resolve("notes.txt")), "the user's file stays");
        assertTrue(run.claim(job(), false), "once claimed it is this run's directory");
    }

    @Test
    void aRunWithoutACommittedRoundIsReplacedWithForceKeepingWhatDidNotChange() throws Exception {
        RunDirectory run = new RunDirectory(new Storage(new Configuration()), dir.toString());
        run.claim(job(), false);
        Files.createDirectories(dir.resolve("base-quantized"));
        Files.createDirectories(dir.resolve("data"));
        Files.createDirectories(dir.resolve("checkpoints/round-00000"));   // round 0 is the initial adapter
        Files.writeString(dir.resolve("checkpoints/round-00000/_MANIFEST.json"), "{}");
        String p = String.join("\n", run.problems(job("skip-bad-records", true), false));
        assertTrue(p.contains("holds a run with different settings (skip-bad-records: was false, now true) that "
                + "stopped before its first committed round: pass --force to replace it"), p);
        assertFalse(run.claim(job("skip-bad-records", true), true));
        assertTrue(Files.isDirectory(dir.resolve("base-quantized")), "the quantized base does not depend on it");
        assertFalse(Files.exists(dir.resolve("data")), "the prepared data does");
        assertFalse(Files.exists(dir.resolve("checkpoints")));
        assertTrue(run.claim(job("skip-bad-records", true), false), "the directory now holds the new run");
    }

    @Test
    void moreRoundsExtendAConstantScheduleRunFewerAreRefused() throws Exception {
        RunDirectory run = new RunDirectory(new Storage(new Configuration()), dir.toString());
        run.claim(job("rounds", 3), false);
        committedRound(3);
        assertEquals(job("rounds", 3).configHash(), job("rounds", 5).configHash(), "rounds are not in the hash");
        assertTrue(run.claim(job("rounds", 5), false), "an extension continues the run");
        assertTrue(Files.readString(dir.resolve("run.json")).contains("\"rounds\" : 5"));
        String fewer = String.join("\n", run.problems(job("rounds", 2), false));
        assertTrue(fewer.contains("holds this run with 3 committed rounds; --rounds 2 is fewer: pass --rounds 3"),
                fewer);
    }

    @Test
    void aDecayingScheduleFixesTheNumberOfRounds() throws Exception {
        RunDirectory run = new RunDirectory(new Storage(new Configuration()), dir.toString());
        run.claim(job("rounds", 3, "lr-schedule", "cosine"), false);
        committedRound(3);
        String p = String.join("\n", run.problems(job("rounds", 5, "lr-schedule", "cosine"), false));
        assertTrue(p.contains("(rounds: was 3, now 5)") && p.contains("under --lr-schedule cosine every step's "
                + "learning rate depends on the number of rounds"), p);
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
