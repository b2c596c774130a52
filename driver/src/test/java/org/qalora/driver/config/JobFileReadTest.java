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

    @Test
    void aDirectoryIsRefusedWithWhatWentWrong() throws Exception {
        Path sub = Files.createDirectories(dir.resolve("jobs"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainJobLoader.readText(sub));
        assertTrue(e.getMessage().startsWith("cannot read job file " + sub.toAbsolutePath() + " ("),
                e.getMessage());
    }
}
