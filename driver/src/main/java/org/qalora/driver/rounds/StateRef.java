package org.qalora.driver.rounds;

import java.util.Arrays;
import java.util.List;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterTensors;

/**
 * A committed round's state as a task sees it: its files (one, or parts in key order), their SHA-256s from the
 * manifest, and its identity ({@link CheckpointStore.Committed#stateId()}). Shipped in task closures.
 */
public record StateRef(String[] files, String[] sha256s, String id) implements java.io.Serializable {
    public static StateRef of(CheckpointStore.Committed c) {
        return new StateRef(c.stateFiles().stream().map(Path::toString).toArray(String[]::new),
                c.stateSha256s().toArray(String[]::new), c.stateId());
    }

    /**
     * A fresh copy of the state, the caller's own: the files are copied (and checked) once per JVM and round, then
     * read from that local copy on each call ({@link ExecutorCache#startState}).
     */
    public AdapterTensors load(Storage storage) {
        return ExecutorCache.startState(storage, Arrays.stream(files).map(Path::new).toList(), List.of(sha256s), id);
    }

    /** The state's files as paths, in key order. */
    public List<Path> paths() { return Arrays.stream(files).map(Path::new).toList(); }
}
