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
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.security.AccessControlException;

/**
 * The few Hadoop filesystem operations the driver's commit protocols are made of, on any Hadoop path
 * ({@code /local}, {@code file:///}, {@code hdfs://}, {@code s3a://}). Every write goes to a fresh temporary name
 * first and is renamed into place, so a reader never sees a half-written file. Errors name the path and say what
 * would fix them.
 */
public final class Storage {
    private final Configuration conf;

    public Storage(Configuration conf) {
        this.conf = conf;
    }

    public Configuration conf() { return conf; }

    public Path path(String location) {
        if (location == null || location.isBlank()) {
            throw new IllegalArgumentException("empty path");
        }
        Path p = new Path(location);
        try {
            return fs(p).makeQualified(p);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("cannot use path '" + location + "': " + e.getMessage(), e);
        }
    }

    /**
     * The filesystem of {@code p}. On the local filesystem this is the raw one: Hadoop's checksummed local
     * filesystem would litter model directories with {@code .crc} side files, and our manifests carry SHA-256
     * checksums of their own.
     */
    public FileSystem fs(Path p) {
        try {
            FileSystem fs = p.getFileSystem(conf);
            return fs instanceof LocalFileSystem local ? local.getRaw() : fs;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the filesystem of " + p + ": " + e.getMessage()
                    + " (check the scheme and the Hadoop configuration)", e);
        }
    }

    public boolean exists(Path p) {
        try {
            return fs(p).exists(p);
        } catch (IOException e) {
            throw failure("check", p, e);
        }
    }

    public boolean isDirectory(Path p) {
        try {
            return fs(p).getFileStatus(p).isDirectory();
        } catch (FileNotFoundException e) {
            return false;
        } catch (IOException e) {
            throw failure("check", p, e);
        }
    }

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

    public byte[] readAll(Path p) {
        try (InputStream in = fs(p).open(p)) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw failure("read", p, e);
        }
    }

    public String readString(Path p) {
        return new String(readAll(p), StandardCharsets.UTF_8);
    }

    /** Writes {@code bytes} to {@code target} atomically: a temporary sibling, then a rename that replaces. */
    public void writeAtomically(Path target, byte[] bytes) {
        Path tmp = temporarySibling(target);
        try {
            FileSystem fs = fs(target);
            try (FSDataOutputStream out = fs.create(tmp, false)) {
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
            FileContext fc = FileContext.getFileContext(uri.getScheme() == null ? fs(target).getUri() : uri, conf);
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
        try {
            fs(p).delete(p, true);
        } catch (IOException e) {
            throw failure("delete", p, e);
        }
    }

    public void deleteQuietly(Path p) {
        try {
            fs(p).delete(p, true);
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

    public long length(Path p) {
        try {
            return fs(p).getFileStatus(p).getLen();
        } catch (IOException e) {
            throw failure("stat", p, e);
        }
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
