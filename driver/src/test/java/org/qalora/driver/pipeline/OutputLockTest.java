package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;

/**
 * {@link OutputLock} on both of its liveness mechanisms: the OS file lock on the local file system, and the lease
 * of an open file on a real HDFS (MiniDFSCluster), where the other holder is a second HDFS client with its own
 * lease, as a second driver process would be.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
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

    @Test
    void anHdfsLockIsRefusedWhileItsHoldersLeaseLivesAndTakenOverOnceTheDeadHoldersLeaseExpires() throws Exception {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, dir.resolve("hdfs").toString());
        conf.setInt("dfs.replication", 1);
        MiniDFSCluster hdfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        try {
            hdfs.waitActive();
            Storage storage = new Storage(conf);
            org.apache.hadoop.fs.Path out = storage.path(hdfs.getURI() + "/runs/a");
            storage.mkdirs(out);
            // The other driver: its own HDFS client (its own lease), on another host, holding the lock file open.
            FileSystem other = FileSystem.newInstance(hdfs.getURI(), conf);
            FSDataOutputStream held = other.create(new org.apache.hadoop.fs.Path(out, OutputLock.FILE), false);
            held.write("pid 4242 on other-host (user spark, since 2026-12-06T03:00:00Z)\n".getBytes(StandardCharsets.UTF_8));
            held.hflush();

            List<String> log = new ArrayList<>();
            long t0 = System.nanoTime();
            InvalidSettingsException e = assertThrows(InvalidSettingsException.class,
                    () -> OutputLock.acquire(storage, out, log::add));
            assertTrue((System.nanoTime() - t0) < TimeUnit.SECONDS.toNanos(5), "refused at once");
            assertTrue(e.getMessage().contains("is held by pid 4242 on other-host")
                    && e.getMessage().contains("its HDFS lease is live"), e.getMessage());

            // The other driver dies mid-write (its client stops renewing, nothing is closed), and its lease expires.
            hdfs.setLeasePeriod(500, 60_000);
            ((DistributedFileSystem) other).getClient().closeAllFilesBeingWritten(true);
            Thread.sleep(1_000);
            try (OutputLock lock = OutputLock.acquire(storage, out, log::add)) {
                assertTrue(String.join("\n", log).contains("took over " + lock.file() + ", left by pid 4242 on other-host"),
                        String.join("\n", log));
                // While this JVM holds it, the other client cannot take it back.
                assertThrows(Exception.class, () -> other.append(lock.file()));
            }
            assertFalse(storage.exists(new org.apache.hadoop.fs.Path(out, OutputLock.FILE)), "released");
            try (OutputLock again = OutputLock.acquire(storage, out, log::add)) {
                assertTrue(storage.exists(again.file()));
            }
            other.close();
        } finally {
            hdfs.shutdown(true);
            FileSystem.closeAll();
        }
    }
}
