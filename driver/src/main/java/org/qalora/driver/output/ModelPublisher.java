package org.qalora.driver.output;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.driver.checkpoint.RoundManifest;
import org.qalora.driver.checkpoint.Storage;

/**
 * Publishes a model directory atomically under an output root, on any Hadoop filesystem:
 * <ol>
 *   <li>the caller creates and fills a fresh directory {@code _tmp-<version>-<uuid>/} (it does not exist yet, so
 *   writers that insist on creating their own output directory, like the worker's Merger, can write it);
 *   <li>the publisher checksums every file and writes {@code _MANIFEST.json} last;
 *   <li>the directory is renamed to {@code <version>/}, a name that must not exist yet (renaming onto an existing
 *   directory would nest it);
 *   <li>{@code LATEST} is flipped by writing a temporary file and renaming it over the old one.
 * </ol>
 * Readers ({@link #latest}) accept only a version directory that LATEST names and that holds a manifest, so a
 * crash at any step leaves the previous model in place and at most an ignorable {@code _tmp-} directory (which
 * {@code RunDirectory} removes when the run is restarted).
 *
 * <p>A crash between the rename and the flip leaves a complete version that LATEST does not name. Version names are
 * derived from the content (the caller's choice, e.g. round and state checksum), so the restarted run asks to
 * publish the same name again: if that directory's files match its manifest and the manifest says what this
 * publish would write, the publish is completed by flipping LATEST, instead of failing on "already exists" forever
 * (or, with time-stamped names, leaving an orphaned second copy of the model).
 */
public final class ModelPublisher {
    public static final String MANIFEST = "_MANIFEST.json";
    public static final String LATEST = "LATEST";
    /** The names {@code PublishStage} gives versions: {@code v-r<round>-<8 hex>}. */
    private static final java.util.regex.Pattern VERSION_NAME = java.util.regex.Pattern.compile("v-r\\d{5,}-[0-9a-f]{8}");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Creates {@code dir} (which does not exist yet) and writes a model's files into it. */
    @FunctionalInterface
    public interface DirectoryWriter {
        void writeInto(Path dir) throws IOException;
    }

    /** The {@code _MANIFEST.json} of a published version. */
    public record VersionManifest(String format, String version, Map<String, String> info,
                                  Map<String, RoundManifest.FileEntry> files) {
        public static final String FORMAT = "qalora-model-v1";
    }

    private final Storage storage;
    private final HoldPoint hold;
    private final Consumer<String> progress;

    public ModelPublisher(Storage storage) {
        this(storage, HoldPoint.none(), s -> {});
    }

    /** {@code hold}: the test hook that can stop the driver between the rename and the LATEST flip. */
    public ModelPublisher(Storage storage, HoldPoint hold, Consumer<String> progress) {
        this.storage = storage;
        this.hold = hold;
        this.progress = progress;
    }

    /** Publishes what {@code writer} writes as {@code root/version} and points {@code root/LATEST} at it. */
    public Path publish(Path root, String version, Map<String, String> info, DirectoryWriter writer) {
        storage.mkdirs(root);
        Path target = new Path(root, version);
        if (storage.exists(target)) {
            completeInterrupted(target, version, info);
            storage.writeAtomically(new Path(root, LATEST), (version + "\n").getBytes(StandardCharsets.UTF_8));
            return target;
        }
        Path tmp = Storage.temporarySibling(target);
        try {
            writer.writeInto(tmp);
            if (!storage.isDirectory(tmp)) {
                throw new IOException("the model writer did not create " + tmp);
            }
        } catch (IOException | RuntimeException e) {
            storage.deleteQuietly(tmp);
            throw new IllegalStateException("writing the model into " + tmp + " failed (nothing was published): "
                    + e.getMessage(), e);
        }
        Map<String, RoundManifest.FileEntry> files = new TreeMap<>();
        try {
            RemoteIterator<LocatedFileStatus> it = storage.fs(tmp).listFiles(tmp, true);
            String prefix = tmp.toUri().getPath() + "/";
            while (it.hasNext()) {
                LocatedFileStatus st = it.next();
                String rel = st.getPath().toUri().getPath().substring(prefix.length());
                if (rel.startsWith("_tmp-") || rel.contains("/_tmp-")) {
                    throw new IllegalStateException("the model writer left a temporary file " + st.getPath());
                }
                files.put(rel, storage.entryOf(st.getPath()));
            }
        } catch (IOException e) {
            throw Storage.failure("list", tmp, e);
        }
        try {
            storage.writeAtomically(new Path(tmp, MANIFEST),
                    JSON.writeValueAsBytes(new VersionManifest(VersionManifest.FORMAT, version, info, files)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (!storage.renameToFresh(tmp, target)) {
            throw new IllegalStateException("cannot rename " + tmp + " to " + target + " (did another run publish it?)");
        }
        hold.reached(HoldPoint.VERSION_RENAMED);
        storage.writeAtomically(new Path(root, LATEST), (version + "\n").getBytes(StandardCharsets.UTF_8));
        return target;
    }

    /**
     * {@code target} exists: accepts it only as this very publish, interrupted after its rename (its manifest says
     * the same version and info, and every file matches); anything else is never overwritten.
     */
    private void completeInterrupted(Path target, String version, Map<String, String> info) {
        String refusal = target + " already exists and is not this publish";
        if (!storage.exists(new Path(target, MANIFEST))) {
            throw new IllegalStateException(refusal + " (it has no " + MANIFEST + "): versions are never overwritten; "
                    + "move it away to publish");
        }
        VersionManifest existing = manifest(target);
        if (!version.equals(existing.version()) || !info.equals(existing.info())) {
            throw new IllegalStateException(refusal + " (its manifest says version " + existing.version() + ", "
                    + existing.info() + "): versions are never overwritten");
        }
        Optional<String> mismatch = verify(target);
        if (mismatch.isPresent()) {
            throw new IllegalStateException(refusal + ": " + mismatch.get() + "; it changed after it was published: "
                    + "move it away to publish again");
        }
        progress.accept("publish: " + target + " is complete but LATEST did not name it yet (the previous run "
                + "stopped in between): completing that publish");
    }

    /** The version directory {@code root/LATEST} names, if it holds a manifest. */
    public Optional<Path> latest(Path root) {
        Path pointer = new Path(root, LATEST);
        if (!storage.exists(pointer)) {
            return Optional.empty();
        }
        Path dir = new Path(root, storage.readString(pointer).trim());
        return storage.exists(new Path(dir, MANIFEST)) ? Optional.of(dir) : Optional.empty();
    }

    /**
     * {@code --keep-versions N}: deletes the published versions of {@code root} older than its {@code keep} newest,
     * never the one LATEST names (nor anything while LATEST names none); {@code keep} 0 keeps all. Called only after
     * LATEST flipped to the new version, so a reader that follows LATEST never finds its model gone; a crash between
     * the flip and this leaves extra versions, which the next run's call deletes. Newest is by the time the version's
     * manifest was written (the version names carry the round, not a date). A version directory without a manifest
     * (one whose delete was cut short on a file system where deleting a directory is not one step) counts as oldest.
     * Returns the deleted versions.
     */
    public java.util.List<Path> retain(Path root, int keep) {
        java.util.List<Path> deleted = new java.util.ArrayList<>();
        Optional<Path> latest = latest(root);
        if (keep <= 0 || latest.isEmpty()) {
            return deleted;
        }
        hold.reached(HoldPoint.LATEST_FLIPPED);
        record Version(Path dir, long written) {}
        java.util.List<Version> versions = new java.util.ArrayList<>();
        try {
            for (org.apache.hadoop.fs.FileStatus st : storage.fs(root).listStatus(root)) {
                if (st.isDirectory() && VERSION_NAME.matcher(st.getPath().getName()).matches()) {
                    Path manifest = new Path(st.getPath(), MANIFEST);
                    long written = storage.exists(manifest)
                            ? storage.fs(manifest).getFileStatus(manifest).getModificationTime() : Long.MIN_VALUE;
                    versions.add(new Version(st.getPath(), written));
                }
            }
        } catch (IOException e) {
            throw Storage.failure("list", root, e);
        }
        versions.sort(java.util.Comparator.comparingLong(Version::written).reversed()
                .thenComparing(v -> v.dir().getName(), java.util.Comparator.reverseOrder()));
        String current = latest.get().getName();
        for (int i = keep; i < versions.size(); i++) {
            Path dir = versions.get(i).dir();
            if (!dir.getName().equals(current)) {
                storage.delete(dir);
                deleted.add(dir);
                progress.accept("--keep-versions " + keep + ": deleted " + dir);
            }
        }
        return deleted;
    }

    public VersionManifest manifest(Path versionDir) {
        try {
            return JSON.readValue(storage.readAll(new Path(versionDir, MANIFEST)), VersionManifest.class);
        } catch (IOException e) {
            throw Storage.failure("parse the manifest of", versionDir, e);
        }
    }

    /** Re-checks every file of a published version against its manifest; returns the first mismatch, if any. */
    public Optional<String> verify(Path versionDir) {
        return storage.firstMismatch(versionDir, manifest(versionDir).files());
    }

}
