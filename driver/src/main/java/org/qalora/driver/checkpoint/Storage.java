package org.qalora.driver.checkpoint;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.security.AccessControlException;
import org.qalora.quant.io.HadoopPaths;

/**
 * The driver's commit protocols on any Hadoop path ({@code /local}, {@code file:///}, {@code hdfs://},
 * {@code s3a://}), on top of {@link HadoopPaths}, which resolves locations (a path without a scheme is local, local
 * files go through the raw file system so no {@code .crc} files appear) and reads files. What this class adds is
 * what the checkpoint protocol needs beyond that: a replace that is one rename on HDFS ({@code FileContext}), a
 * rename that never lands on an existing name, SHA-256 checksums, and unchecked errors that name the path and say
 * what would fix them (e.g. a permission problem).
 */
public final class Storage {
    private final HadoopPaths paths;

    /** {@code conf}: in Spark tasks, the shipped {@code hadoopConfiguration} of the application. */
    public Storage(Configuration conf) {
        this(new HadoopPaths(conf));
    }

    public Storage(HadoopPaths paths) {
        this.paths = paths;
    }

    public Configuration conf() { return paths.configuration(); }

    /** The location resolver over the same configuration (for readers that take location strings). */
    public HadoopPaths paths() { return paths; }

    /** The qualified path of a location string (see {@link HadoopPaths#resolve}). */
    public Path path(String location) {
        try {
            return paths.resolve(location).path();
        } catch (IOException | IllegalArgumentException e) {
            throw new IllegalArgumentException("cannot use path '" + location + "': " + e.getMessage(), e);
        }
    }

    /** The filesystem of {@code p} (the raw one for local paths: our manifests carry checksums of their own). */
    public FileSystem fs(Path p) {
        try {
            return paths.fileSystem(p);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the filesystem of " + p + ": " + e.getMessage()
                    + " (check the scheme and the Hadoop configuration)", e);
        }
    }

    /** A Hadoop operation on one path; its {@link IOException} becomes a {@link #failure} naming the path. */
    @FunctionalInterface
    private interface PathCall<T> {
        T call(String location) throws IOException;
    }

    private static <T> T unchecked(String what, Path p, PathCall<T> call) {
        try {
            return call.call(p.toString());
        } catch (IOException e) {
            throw failure(what, p, e);
        }
    }

    public boolean exists(Path p) { return unchecked("check", p, paths::exists); }

    public boolean isDirectory(Path p) { return unchecked("check", p, paths::isDirectory); }

    public void mkdirs(Path p) {
        try {
            if (!fs(p).mkdirs(p)) {
                throw new UncheckedIOException(new IOException("cannot create directory " + p
                        + ": mkdirs returned false (a file with that name exists?)"));
            }
        } catch (IOException e) {
            throw failure("create directory", p, e);
        }
    }

    public byte[] readAll(Path p) { return unchecked("read", p, paths::readAllBytes); }

    public String readString(Path p) {
        return new String(readAll(p), StandardCharsets.UTF_8);
    }

    /**
     * Creates the new file {@code p} (refusing to overwrite one), with {@code replication} copies where it is above 0
     * and below the file system's default replication for {@code p}, else with the default: a transient file may ask
     * for fewer copies, never for more than the cluster keeps of anything. Local file systems ignore replication.
     */
    public FSDataOutputStream createNew(Path p, int replication) throws IOException {
        FileSystem fs = fs(p);
        short standard = fs.getDefaultReplication(p);
        if (replication <= 0 || replication >= standard) {
            return fs.create(p, false);
        }
        return fs.create(p, false, conf().getInt("io.file.buffer.size", 4096), (short) replication,
                fs.getDefaultBlockSize(p));
    }

    /**
     * Writes {@code bytes} to {@code target} atomically: a temporary sibling, synced, then a rename that replaces
     * (unlike {@link HadoopPaths#writeAtomically}, which on HDFS deletes the old file before renaming, so a reader
     * of a manifest could briefly find none).
     */
    public void writeAtomically(Path target, byte[] bytes) {
        Path tmp = temporarySibling(target);
        try {
            try (FSDataOutputStream out = fs(target).create(tmp, false)) {
                out.write(bytes);
                out.hsync();
            }
            replace(tmp, target);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw failure("write", target, e);
        }
    }

    /**
     * Renames a file over {@code target}, replacing it. {@code FileSystem.rename} refuses to overwrite a file, so
     * this goes through {@code FileContext}, which does it in one step on HDFS and on the local filesystem.
     */
    public void replace(Path source, Path target) {
        try {
            URI uri = target.toUri();
            FileContext fc = FileContext.getFileContext(uri.getScheme() == null ? fs(target).getUri() : uri, conf());
            fc.rename(source, target, Options.Rename.OVERWRITE);
        } catch (IOException e) {
            throw failure("rename " + source + " onto", target, e);
        }
    }

    /**
     * Renames a directory or file to a name that must not exist yet. Never renames onto an existing directory
     * (Hadoop would move the source inside it).
     */
    public boolean renameToFresh(Path source, Path target) {
        try {
            FileSystem fs = fs(target);
            if (fs.exists(target)) {
                return false;
            }
            return fs.rename(source, target) && fs.exists(target);
        } catch (IOException e) {
            throw failure("rename " + source + " to", target, e);
        }
    }

    public void delete(Path p) {
        unchecked("delete", p, location -> {
            paths.delete(location);
            return null;
        });
    }

    public void deleteQuietly(Path p) {
        try {
            paths.delete(p.toString());
        } catch (IOException | RuntimeException ignored) {
            // best effort cleanup of our own temporary file: a leftover is ignored by every reader anyway
        }
    }

    public String sha256(Path p) {
        try (InputStream in = fs(p).open(p)) {
            MessageDigest md = sha256();
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw failure("checksum", p, e);
        }
    }

    public long length(Path p) { return unchecked("stat", p, paths::length); }

    /** A file's manifest entry: its size and SHA-256. */
    public RoundManifest.FileEntry entryOf(Path p) {
        return new RoundManifest.FileEntry(length(p), sha256(p));
    }

    /**
     * Checks the files a manifest lists (names relative to {@code dir}) against their sizes and checksums; returns
     * the first that is missing or differs, as a message naming it.
     */
    public Optional<String> firstMismatch(Path dir, Map<String, RoundManifest.FileEntry> files) {
        for (Map.Entry<String, RoundManifest.FileEntry> f : files.entrySet()) {
            Path p = new Path(dir, f.getKey());
            if (!exists(p)) {
                return Optional.of(p + " is missing");
            }
            if (length(p) != f.getValue().bytes() || !sha256(p).equals(f.getValue().sha256())) {
                return Optional.of(p + " does not match the manifest's checksum");
            }
        }
        return Optional.empty();
    }

    public static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    public static Path temporarySibling(Path target) {
        return new Path(target.getParent(), "_tmp-" + target.getName() + "-" + UUID.randomUUID());
    }

    public static UncheckedIOException failure(String what, Path p, IOException e) {
        String hint = e instanceof AccessControlException || String.valueOf(e.getMessage()).contains("Permission denied")
                ? " (permission denied: run as a user who may write there, or choose another path)"
                : e instanceof FileNotFoundException ? " (it does not exist)" : "";
        return new UncheckedIOException("cannot " + what + " " + p + ": " + e.getMessage() + hint, e);
    }
}
