package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.testing.ToyTrainerFactory;

/**
 * {@code train --update-replication}: the slots' update files (transient, read once by the round's averaging) are
 * written with fewer HDFS copies than the checkpoint, on a MiniDFSCluster of three DataNodes whose default
 * replication is 3, by the rounds on Spark local mode with the deterministic toy trainer. The copies change no bit of
 * the result.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class UpdateReplicationTest {
    private static final RoundSettings SETTINGS = new RoundSettings(2, 2, 2, 42L, "cfg-replication", 2, 0);

    @TempDir
    static Path tmp;
    private static MiniDFSCluster hdfs;
    private static JavaSparkContext jsc;
    private static Storage storage;

    @BeforeAll
    static void start() throws Exception {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, tmp.resolve("hdfs").toString());
        conf.setInt("dfs.replication", 3);
        hdfs = new MiniDFSCluster.Builder(conf).numDataNodes(3).build();
        hdfs.waitActive();
        Configuration client = new Configuration();
        client.set("fs.defaultFS", hdfs.getURI().toString());
        client.setInt("dfs.replication", 3);
        storage = new Storage(client);
        SparkConf spark = SparkSettings.apply(new SparkConf(), "local[2]", "UpdateReplicationTest");
        spark.set("spark.ui.enabled", "false");
        jsc = new JavaSparkContext(spark);
    }

    @AfterAll
    static void stop() {
        if (jsc != null) {
            jsc.stop();
        }
        if (hdfs != null) {
            hdfs.shutdown(true);
        }
    }

    private static TrainingRounds.Result run(String dir, RoundSettings settings, FaultPlan faults) {
        CheckpointStore store = new CheckpointStore(storage, storage.path(hdfs.getURI() + "/runs/" + dir), s -> {});
        return new TrainingRounds(jsc, storage, store, new ToyTrainerFactory(7, "", 0.05f), settings, faults, s -> {})
                .run();
    }

    private static List<FileStatus> files(String dir) throws Exception {
        FileSystem fs = hdfs.getFileSystem();
        List<FileStatus> out = new ArrayList<>();
        var it = fs.listFiles(new org.apache.hadoop.fs.Path("/runs/" + dir), true);
        while (it.hasNext()) {
            out.add(it.next());
        }
        return out;
    }

    @Test
    void updateFilesGetTheAskedCopiesAndTheCheckpointKeepsTheDefault() throws Exception {
        // A slot whose update always fails verification stops the round before its commit prunes the updates, so
        // the files the slot tasks wrote are still there to be looked at.
        assertThrows(RoundFailedException.class,
                () -> run("two-copies", SETTINGS.withUpdateReplication(2), FaultPlan.parse("corrupt:2:1:100")));
        // (Slot 1's file is the fault injection's rewrite, with the default copies; slot 0's is as its task wrote it.)
        FileStatus slot0 = files("two-copies").stream()
                .filter(f -> f.getPath().getParent().getName().equals("updates-00002")
                        && f.getPath().getName().equals(CheckpointStore.updateFileName(0)))
                .findFirst().orElseThrow(() -> new AssertionError("slot 0's update of round 2 must be in place"));
        assertEquals(2, slot0.getReplication(), "update file " + slot0.getPath());
        List<FileStatus> committed = files("two-copies").stream()
                .filter(f -> f.getPath().getParent().getName().startsWith("round-")).toList();
        assertFalse(committed.isEmpty(), "round 1 must be committed");
        for (FileStatus f : committed) {
            assertEquals(3, f.getReplication(), "checkpoint file " + f.getPath());
        }
    }

    @Test
    void oneCopyOfEachUpdateTrainsTheSameBitsAsTheDefault() {
        var one = run("one-copy", SETTINGS.withUpdateReplication(1), FaultPlan.none());
        var standard = run("default-copies", SETTINGS.withUpdateReplication(0), FaultPlan.none());
        assertTrue(AdapterStateFile.read(storage, one.last().stateFiles()).state()
                .bitwiseEquals(AdapterStateFile.read(storage, standard.last().stateFiles()).state()));
    }

    @Test
    void anUpdateWhoseOnlyCopyIsOnAStoppedDataNodeIsRefusedForItsSlotToBeRerun() throws Exception {
        org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(hdfs.getURI() + "/lost/slot-00003.safetensors");
        AdapterStateFile.writeUpdate(storage, p, "_tmp-lost", new ToyTrainerFactory(1, "", 0.1f).initialState(3),
                java.util.Map.of("slot", "3"), 1);
        var where = hdfs.getFileSystem().getFileBlockLocations(p, 0, 1)[0].getNames()[0];
        int index = -1;
        for (int i = 0; i < hdfs.getDataNodes().size(); i++) {
            if (where.equals(hdfs.getDataNodes().get(i).getXferAddress().toString().replaceFirst("^.*/", ""))) {
                index = i;
            }
        }
        assertTrue(index >= 0, "the block's DataNode " + where + " must be one of the cluster's");
        MiniDFSCluster.DataNodeProperties stopped = hdfs.stopDataNode(index);
        try {
            Configuration impatient = new Configuration(storage.conf());
            impatient.setInt("dfs.client.retry.window.base", 10);
            impatient.setBoolean("fs.hdfs.impl.disable.cache", true);
            java.io.UncheckedIOException e = assertThrows(java.io.UncheckedIOException.class,
                    () -> org.qalora.driver.state.SegmentDigests.headerOf(new Storage(impatient), p));
            RuntimeException r = AveragingTask.lostOrRethrow(3, p, e);
            assertTrue(r instanceof AveragingTask.RefusedUpdate refused && refused.slot == 3, String.valueOf(r));
            assertTrue(r.getMessage().contains("slot 3's update " + p + " cannot be read: BlockMissingException"),
                    r.getMessage());
            var other = new java.io.UncheckedIOException(new java.io.IOException("connection timed out"));
            assertTrue(AveragingTask.lostOrRethrow(3, p, other) == other,
                    "any other I/O failure is rethrown for Spark's task retry");
        } finally {
            hdfs.restartDataNode(stopped, true);
            hdfs.waitActive();
        }
    }

    @Test
    void aFileNeverGetsMoreCopiesThanTheDefaultAndZeroMeansTheDefault() throws Exception {
        int[][] askedAndGot = {{1, 1}, {2, 2}, {3, 3}, {5, 3}, {0, 3}};
        for (int[] c : askedAndGot) {
            org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(hdfs.getURI() + "/create/asked-" + c[0]);
            try (FSDataOutputStream out = storage.createNew(p, c[0])) {
                out.write(new byte[] {1, 2, 3});
            }
            assertEquals(c[1], hdfs.getFileSystem().getFileStatus(p).getReplication(), "asked " + c[0]);
        }
    }
}
