package org.qalora.driver.rounds;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;

/**
 * A committed round's start state as one executor keeps it: its files copied, byte for byte, into the executor's
 * local Spark directory, and read from there (memory-mapped) into a fresh {@link AdapterTensors} for each task. Not
 * on the heap, because the copy a task reads goes to its trainer, which trains in it: at LLaMA-7B widths the weights
 * and both Adam moments are 32 MiB per layer (1 GB at 32 layers), and a heap copy kept for the round would sit beside
 * the trainer's for the whole round (docs/PERFORMANCE.md, "One copy of the adapter state"). The local copy also
 * means each task starts from bytes nobody can have written into, so a retried slot restarts from the exact
 * round-start state.
 *
 * <p>Each file's SHA-256 is computed while it is copied and must be the one the round manifest recorded; a file is
 * written under a temporary name and renamed, so a reader never sees a partial copy. Not thread-safe: the
 * {@link ExecutorCache} serialises its use.
 */
final class LocalStateCopy {
    private final String stateId;
    private final List<java.nio.file.Path> files;

    private LocalStateCopy(String stateId, List<java.nio.file.Path> files) {
        this.stateId = stateId;
        this.files = files;
    }

    /**
     * Copies {@code files} (one, or parts in key order) into {@code dir}, checking each against {@code sha256s}.
     *
     * @throws IllegalStateException when a file's bytes are not the ones the manifest recorded
     */
    static LocalStateCopy fetch(Storage storage, List<Path> files, List<String> sha256s, String stateId,
                                java.nio.file.Path dir) {
        String name = "start-" + UUID.nameUUIDFromBytes(stateId.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        List<java.nio.file.Path> local = new ArrayList<>();
        try {
            for (int i = 0; i < files.size(); i++) {
                java.nio.file.Path target = dir.resolve(name + "-part-" + i + ".safetensors");
                copyChecked(storage, files.get(i), sha256s.get(i), target);
                local.add(target);
            }
        } catch (RuntimeException | Error e) {
            delete(local);
            throw e;
        }
        return new LocalStateCopy(stateId, List.copyOf(local));
    }

    private static void copyChecked(Storage storage, Path source, String sha256, java.nio.file.Path target) {
        java.nio.file.Path tmp = target.resolveSibling("_tmp-" + UUID.randomUUID() + "-" + target.getFileName());
        MessageDigest md = Storage.sha256();
        try {
            try (InputStream in = new DigestInputStream(storage.fs(source).open(source), md);
                 OutputStream out = Files.newOutputStream(tmp)) {
                in.transferTo(out);
            }
            String actual = HexFormat.of().formatHex(md.digest());
            if (!actual.equals(sha256)) {
                throw new IllegalStateException(source + " has SHA-256 " + actual + " but its round manifest says "
                        + sha256 + ": the checkpoint was modified while the run was going");
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw Storage.failure("copy the round's start state to " + target + " from", source, e);
        } finally {
            deleteQuietly(tmp);
        }
    }

    /** True when this is the copy of {@code id} and its files are still there (Spark may have removed its dir). */
    boolean holds(String id) {
        return stateId.equals(id) && files.stream().allMatch(Files::isRegularFile);
    }

    /** A fresh copy of the state for one task, read from the local files. */
    AdapterTensors read(Storage storage) {
        return AdapterStateFile.read(storage, files.stream().map(f -> new Path(f.toUri())).toList()).state();
    }

    void delete() { delete(files); }

    private static void delete(List<java.nio.file.Path> files) {
        files.forEach(LocalStateCopy::deleteQuietly);
    }

    private static void deleteQuietly(java.nio.file.Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // a leftover file in a directory Spark removes when the executor stops
        }
    }

    /**
     * The executor's local Spark directory (the block manager's first, which Spark removes when the executor stops
     * and which is this JVM's alone even where executors share a host); outside Spark, a temporary directory of this
     * JVM's.
     */
    static java.nio.file.Path localDir() {
        SparkEnv env = SparkEnv.get();
        File[] dirs = env == null ? null : env.blockManager().diskBlockManager().localDirs();
        if (dirs != null && dirs.length > 0) {
            return dirs[0].toPath();
        }
        return JvmTempDir.DIR;
    }

    private static final class JvmTempDir {
        static final java.nio.file.Path DIR;

        static {
            try {
                DIR = Files.createTempDirectory("qalora-start-state-");
                DIR.toFile().deleteOnExit();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot create a temporary directory for the round's start state", e);
            }
        }
    }
}
