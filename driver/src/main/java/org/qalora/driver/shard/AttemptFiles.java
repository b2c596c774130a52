package org.qalora.driver.shard;

import java.io.IOException;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;

/**
 * Where one merge task attempt writes, and how its files reach the model directory. An attempt writes only under
 * its own {@code <out>/_attempts/<task>-<attempt id>/}, so an attempt killed halfway leaves a partial file there and
 * nowhere else; its finished files are then renamed one by one into {@code <out>/}. A file already there was put
 * by an earlier attempt of the same task that finished its rename before it was lost: merge output is
 * deterministic, so it must be byte-identical, which is checked (SHA-256) rather than assumed, and the new copy is
 * dropped. The driver deletes {@code _attempts/} after the job, before the manifest is computed.
 */
public final class AttemptFiles {
    public static final String ATTEMPTS_DIR = "_attempts";

    private final Storage storage;
    private final Path outDir;
    private final Path attemptDir;

    AttemptFiles(Storage storage, Path outDir, int task, long attemptId) {
        this.storage = storage;
        this.outDir = outDir;
        this.attemptDir = new Path(new Path(outDir, ATTEMPTS_DIR), String.format("task-%05d-attempt-%d", task, attemptId));
    }

    /** The directory this attempt writes into (created fresh). */
    Path directory() {
        storage.deleteQuietly(attemptDir); // an attempt id is unique in the application; this only clears a rerun's leftovers
        storage.mkdirs(attemptDir);
        return attemptDir;
    }

    /** Moves every file of the attempt directory into the model directory (see the class comment). */
    void promote() throws IOException {
        FileSystem fs = storage.fs(attemptDir);
        for (FileStatus st : fs.listStatus(attemptDir)) {
            if (!st.isFile()) {
                throw new IOException("a merge task left a directory " + st.getPath() + " in its attempt directory");
            }
            Path target = new Path(outDir, st.getPath().getName());
            // Checked first: a local file system's rename replaces an existing file, where HDFS's refuses.
            if (!fs.exists(target)) {
                if (fs.rename(st.getPath(), target)) {
                    continue;
                }
                if (!fs.exists(target)) {
                    throw new IOException("cannot rename " + st.getPath() + " to " + target);
                }
            }
            String mine = storage.sha256(st.getPath()), theirs = storage.sha256(target);
            if (!mine.equals(theirs)) {
                throw new IllegalStateException(target + " was written by an earlier attempt with SHA-256 " + theirs
                        + " but this attempt wrote " + mine + ": the merge is not deterministic, which is a bug");
            }
            fs.delete(st.getPath(), false);
        }
        fs.delete(attemptDir, true);
    }

    /** Removes every attempt directory (the driver, once no task of the job runs any more). */
    static void removeAll(Storage storage, Path outDir) {
        storage.deleteQuietly(new Path(outDir, ATTEMPTS_DIR));
    }
}
