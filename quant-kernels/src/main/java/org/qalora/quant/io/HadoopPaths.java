package org.qalora.quant.io;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Resolves location strings to Hadoop {@link Path}s and file systems, and writes files and directories atomically.
 *
 * <p>A location is {@code relative/or/absolute/local}, {@code file:///...}, {@code hdfs://...} or {@code s3a://...}.
 * A location without a scheme is always a <em>local</em> file (resolved against the working directory), even when
 * the configuration's {@code fs.defaultFS} points at HDFS: a user typing {@code --model ./llama} means their disk.
 *
 * <p>Local files go through Hadoop's raw local file system, so no {@code .crc} side files are written next to
 * checkpoints (other tools would see them as stray files).
 *
 * <p>One instance wraps one {@link Configuration}; {@link #defaults()} shares a single default one, and callers that
 * run inside Spark pass {@code sparkContext.hadoopConfiguration()} to {@link #HadoopPaths(Configuration)}.
 */
public final class HadoopPaths {
    private static final HadoopPaths DEFAULTS = new HadoopPaths(new Configuration());
    private static final String TEMP_PREFIX = "_tmp-";

    private final Configuration configuration;
    private final boolean mapLocalFiles;

    public HadoopPaths(Configuration configuration) {
        this(configuration, true);
    }

    /**
     * @param mapLocalFiles false makes readers go through Hadoop streams even for local files, exactly as they do
     *                      for hdfs:// (used to test that path without a cluster, and as a fallback where mapping
     *                      is not wanted)
     */
    public HadoopPaths(Configuration configuration, boolean mapLocalFiles) {
        this.configuration = configuration;
        this.mapLocalFiles = mapLocalFiles;
    }

    /** The shared instance over a default {@link Configuration}. */
    public static HadoopPaths defaults() {
        return DEFAULTS;
    }

    public Configuration configuration() {
        return configuration;
    }

    /**
     * A resolved location: the qualified path and the file system that serves it.
     *
     * @param mappable whether readers may memory-map it (a local file, and mapping not switched off)
     */
    public record Resolved(Path path, FileSystem fileSystem, boolean mappable) {
        /** The local file behind this location when it may be memory-mapped, else null. */
        public java.nio.file.Path localFile() {
            return mappable && "file".equals(path.toUri().getScheme()) ? java.nio.file.Path.of(path.toUri()) : null;
        }
    }

    /** Resolves a location string (see the class comment). */
    public Resolved resolve(String location) throws IOException {
        if (location == null || location.isBlank()) {
            throw new IllegalArgumentException("empty path: give a local path or a file://, hdfs:// or s3a:// URI");
        }
        Path path = hasScheme(location)
                ? new Path(location)
                : new Path(java.nio.file.Path.of(location).toAbsolutePath().normalize().toUri());
        FileSystem fs = fileSystem(path);
        return new Resolved(fs.makeQualified(path), fs, mapLocalFiles);
    }

    /**
     * The file system serving an already-built Hadoop {@code path} (its scheme, else {@code fs.defaultFS}); for local
     * paths the raw one, so no {@code .crc} side files appear (see the class comment).
     */
    public FileSystem fileSystem(Path path) throws IOException {
        FileSystem fs = path.getFileSystem(configuration);
        return fs instanceof LocalFileSystem local ? local.getRawFileSystem() : fs;
    }

    private static boolean hasScheme(String location) {
        // "C:" style drive letters do not occur on our platforms; a scheme is letters followed by ":/".
        int colon = location.indexOf(':');
        if (colon <= 0 || !location.startsWith(":/", colon)) {
            return false;
        }
        return location.substring(0, colon).chars().allMatch(c -> Character.isLetterOrDigit(c) || c == '+' || c == '.' || c == '-');
    }

    /** The location {@code name} inside directory {@code dir}, keeping the scheme of {@code dir}. */
    /**
     * True when {@code name} is one plain file name that {@link #child} keeps inside its directory: not empty, not
     * {@code .} or {@code ..}, no {@code /} or {@code \\}, no {@code :} (a scheme or drive), no control characters.
     * Names read from files (index shard names, manifest entries) must pass this before they are resolved.
     */
    public static boolean isPlainFileName(String name) {
        if (name == null || name.isEmpty() || name.equals(".") || name.equals("..")) {
            return false;
        }
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c == '/' || c == '\\' || c == ':' || c < 0x20 || c == 0x7f) {
                return false;
            }
        }
        return true;
    }

    public static String child(String dir, String name) {
        return dir.endsWith("/") ? dir + name : dir + "/" + name;
    }

    public boolean exists(String location) throws IOException {
        Resolved r = resolve(location);
        return r.fileSystem().exists(r.path());
    }

    public boolean isDirectory(String location) throws IOException {
        Resolved r = resolve(location);
        return r.fileSystem().exists(r.path()) && r.fileSystem().getFileStatus(r.path()).isDirectory();
    }

    public long length(String location) throws IOException {
        Resolved r = resolve(location);
        return r.fileSystem().getFileStatus(r.path()).getLen();
    }

    /** Opens a file for (positional) reading. */
    public FSDataInputStream open(String location) throws IOException {
        Resolved r = resolve(location);
        try {
            return r.fileSystem().open(r.path());
        } catch (FileNotFoundException e) {
            throw new FileNotFoundException(location + ": no such file");
        }
    }

    /** Reads a whole (small) file, e.g. a JSON config. */
    public byte[] readAllBytes(String location) throws IOException {
        Resolved r = resolve(location);
        long length;
        try {
            length = r.fileSystem().getFileStatus(r.path()).getLen();
        } catch (FileNotFoundException e) {
            throw new FileNotFoundException(location + ": no such file");
        }
        if (length > Integer.MAX_VALUE - 16) {
            throw new IOException(location + ": " + length + " bytes is too large to read into memory at once");
        }
        byte[] bytes = new byte[(int) length];
        try (FSDataInputStream in = r.fileSystem().open(r.path())) {
            in.readFully(0, bytes);
        }
        return bytes;
    }

    /** Writes to an output stream; may throw. */
    @FunctionalInterface
    public interface StreamWriter {
        void write(OutputStream out) throws IOException;
    }

    /** Fills a directory given by its location; may throw. */
    @FunctionalInterface
    public interface DirectoryWriter {
        void write(String directory) throws IOException;
    }

    /**
     * Writes a file so that readers see either the old content or the complete new one, never a prefix: the
     * callback writes {@code _tmp-<uuid>} in the same directory (same file system, so the rename is cheap), which
     * is then renamed over {@code location}. On any failure the temporary file is deleted and the target is left
     * untouched.
     */
    public void writeAtomically(String location, StreamWriter writer) throws IOException {
        Resolved target = resolve(location);
        FileSystem fs = target.fileSystem();
        Path parent = target.path().getParent();
        fs.mkdirs(parent);
        Path temp = new Path(parent, TEMP_PREFIX + UUID.randomUUID());
        boolean done = false;
        try {
            try (FSDataOutputStream out = fs.create(temp, false)) {
                writer.write(out);
            }
            if (!fs.rename(temp, target.path())) {
                // HDFS refuses to rename onto an existing file; the local file system replaces it atomically.
                if (fs.exists(target.path()) && fs.getFileStatus(target.path()).isFile()) {
                    fs.delete(target.path(), false);
                }
                if (!fs.rename(temp, target.path())) {
                    throw new IOException("could not rename " + temp + " to " + location);
                }
            }
            done = true;
        } finally {
            if (!done) {
                deleteQuietly(fs, temp);
            }
        }
    }

    /**
     * Builds a directory atomically: the callback fills a fresh temporary sibling {@code _tmp-<uuid>}, which is then
     * renamed to {@code location}. The final directory must not exist yet (we never merge into or replace a
     * directory someone else may be reading). On failure the temporary directory is deleted.
     */
    public void writeDirectoryAtomically(String location, DirectoryWriter writer) throws IOException {
        Resolved target = resolve(location);
        FileSystem fs = target.fileSystem();
        if (fs.exists(target.path())) {
            throw new IOException(location + " already exists: choose a new output directory or delete it first");
        }
        Path temp = new Path(target.path().getParent(), TEMP_PREFIX + UUID.randomUUID());
        fs.mkdirs(temp);
        boolean done = false;
        try {
            writer.write(temp.toString());
            commitDirectory(temp.toString(), location);
            done = true;
        } finally {
            if (!done) {
                deleteQuietly(fs, temp);
            }
        }
    }

    /** Renames a finished temporary directory to its final name, which must not exist. */
    public void commitDirectory(String tempDirectory, String finalDirectory) throws IOException {
        Resolved temp = resolve(tempDirectory);
        Resolved target = resolve(finalDirectory);
        FileSystem fs = target.fileSystem();
        if (fs.exists(target.path())) {
            throw new IOException(finalDirectory + " already exists: choose a new output directory or delete it first");
        }
        fs.mkdirs(target.path().getParent());
        if (!fs.rename(temp.path(), target.path())) {
            throw new IOException("could not rename " + tempDirectory + " to " + finalDirectory);
        }
    }

    /** Deletes a file or directory tree if it exists. */
    public void delete(String location) throws IOException {
        Resolved r = resolve(location);
        r.fileSystem().delete(r.path(), true);
    }

    private static void deleteQuietly(FileSystem fs, Path path) {
        try {
            fs.delete(path, true);
        } catch (IOException ignored) {
            // The original failure is what the caller needs to see; a leftover _tmp- file is harmless.
        }
    }

    /** The URI string of a resolved location (for messages and for joining). */
    public String qualified(String location) throws IOException {
        URI uri = resolve(location).path().toUri();
        return uri.toString();
    }
}
