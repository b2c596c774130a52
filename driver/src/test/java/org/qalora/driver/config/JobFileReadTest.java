package org.qalora.driver.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading a --job file: a missing one is named once, with the flag that fixes it. */
class JobFileReadTest {
    @TempDir
    Path dir;

    @Test
    void aMissingJobFileIsNamedOnceWithTheFlag() {
        Path missing = dir.resolve("job.yaml");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.readText(missing));
        assertEquals("job file " + missing.toAbsolutePath() + " does not exist: check --job", e.getMessage());
    }

    /** The example the README points at: every key known, every value valid, every non-default one taken. */
    @Test
    void theShippedExampleJobIsValid() {
        Path example = org.qalora.driver.eval.CliRun.repo().resolve("samples/job.yaml");
        var fromFile = TrainJobLoader.parseYaml(TrainJobLoader.readText(example), example.toString());
        TrainJob job = TrainJobLoader.build(example.toString(), TrainJobLoader.defaults("/repo"), fromFile);
        assertEquals(java.util.List.of("samples/alpaca-sample.json"), job.data());
        assertEquals(4, job.rounds());
        assertEquals(16, job.batchSize());
        assertEquals(2, job.warmupSteps());
        assertTrue(job.skipBadRecords());
        assertEquals(512, job.sourceMaxLen());
        assertEquals(128, job.targetMaxLen());
    }

    @Test
    void aDirectoryIsRefusedWithWhatWentWrong() throws Exception {
        Path sub = Files.createDirectories(dir.resolve("jobs"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainJobLoader.readText(sub));
        assertTrue(e.getMessage().startsWith("cannot read job file " + sub.toAbsolutePath() + " ("),
                e.getMessage());
    }
}
