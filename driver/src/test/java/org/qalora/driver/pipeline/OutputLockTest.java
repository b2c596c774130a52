package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;

/**
 * {@link OutputLock} on the local file system (the OS file lock). Its HDFS side (the lease of an open file, a second
 * client as the other holder) runs on the MiniDFSCluster of {@code ScheduledTrainTest} in the tests module.
 */
class OutputLockTest {
    @TempDir
    Path dir;

    private static final String LIVE = "pid " + ProcessHandle.current().pid();

    @Test
    void aLocalLockRefusesASecondRunNamingItsHolderAndALeftLockFileIsTakenOver() throws Exception {
        Storage storage = new Storage(new Configuration());
        org.apache.hadoop.fs.Path out = storage.path(dir.resolve("out").toString());
        List<String> log = new ArrayList<>();
        try (OutputLock first = OutputLock.acquire(storage, out, log::add)) {
            InvalidSettingsException e = assertThrows(InvalidSettingsException.class,
                    () -> OutputLock.acquire(storage, out, log::add));
            assertTrue(e.getMessage().contains("--output " + out + " is in use by another run")
                    && e.getMessage().contains("held by " + LIVE + " on "), e.getMessage());
            assertTrue(Files.exists(dir.resolve("out/" + OutputLock.FILE)), "the refusal left the holder's file");
        }
        assertFalse(Files.exists(dir.resolve("out")), "the lock created the directory and removed it, empty, again");

        // A driver that died between releasing its OS lock and deleting the file: a closed file, nobody holding it.
        Files.createDirectories(dir.resolve("left"));
        Files.writeString(dir.resolve("left/" + OutputLock.FILE), "pid 1 on elsewhere (user x, since then)\n");
        org.apache.hadoop.fs.Path left = storage.path(dir.resolve("left").toString());
        try (OutputLock taken = OutputLock.acquire(storage, left, log::add)) {
            assertTrue(String.join("\n", log).contains("took over " + taken.file() + ", left by pid 1 on elsewhere"),
                    String.join("\n", log));
            assertTrue(Files.readString(dir.resolve("left/" + OutputLock.FILE)).startsWith(LIVE + " on "));
        }
        assertFalse(Files.exists(dir.resolve("left/" + OutputLock.FILE)), "released: the file is gone");
        assertTrue(Files.isDirectory(dir.resolve("left")), "a directory the lock did not create stays");
    }
}
