package org.qalora.datasets.prepare;

import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.io.OutputFile;
import org.apache.parquet.io.PositionOutputStream;

import java.io.IOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * A Parquet {@link OutputFile} on any Hadoop FileSystem that hashes (SHA-256) and counts the bytes as they are
 * written, so the manifest gets each shard's checksum without reading it back.
 *
 * <p>After {@link #holdTail()} (called just before the writer is closed) the bytes are kept in memory instead: on
 * close they are the last row group, the page indexes and the footer, which {@link CanonicalFooter} makes the same
 * in every process before they are written and hashed. That is at most one row group more in memory, which
 * parquet-mr already buffered in full before writing it.
 */
final class HashingOutputFile implements OutputFile {

    private final FileSystem fs;
    private final Path path;
    private final MessageDigest digest;
    private long bytes;
    private boolean holding;
    private byte[] held = new byte[0];
    private int heldLength;

    HashingOutputFile(FileSystem fs, Path path) {
        this.fs = fs;
        this.path = path;
        try {
            this.digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public PositionOutputStream create(long blockSizeHint) throws IOException {
        return stream(false);
    }

    @Override
    public PositionOutputStream createOrOverwrite(long blockSizeHint) throws IOException {
        return stream(true);
    }

    private PositionOutputStream stream(boolean overwrite) throws IOException {
        FSDataOutputStream out = fs.create(path, overwrite);
        return new PositionOutputStream() {
            @Override
            public long getPos() {
                return bytes;
            }

            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                if (holding) {
                    if (heldLength + len > held.length) {
                        held = Arrays.copyOf(held, Math.max(heldLength + len, Math.max(2 * held.length, 1 << 16)));
                    }
                    System.arraycopy(b, off, held, heldLength, len);
                    heldLength += len;
                } else {
                    out.write(b, off, len);
                    digest.update(b, off, len);
                }
                bytes += len;
            }

            @Override
            public void flush() throws IOException {
                out.flush();
            }

            @Override
            public void close() throws IOException {
                try (out) {
                    if (holding) {
                        CanonicalFooter.canonicalise(held, heldLength, path.toString());
                        out.write(held, 0, heldLength);
                        digest.update(held, 0, heldLength);
                        holding = false;
                        held = new byte[0];
                    }
                }
            }
        };
    }

    /** From now on keep the bytes back until close, which canonicalises the footer among them. */
    void holdTail() {
        holding = true;
    }

    @Override
    public boolean supportsBlockSize() {
        return false;
    }

    @Override
    public long defaultBlockSize() {
        return 0;
    }

    @Override
    public String getPath() {
        return path.toString();
    }

    /** Hex SHA-256 of everything written; call once, after the writer is closed. */
    String sha256() {
        return HexFormat.of().formatHex(digest.digest());
    }

    long bytes() {
        return bytes;
    }
}
