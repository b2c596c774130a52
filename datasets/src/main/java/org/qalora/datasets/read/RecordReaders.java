package org.qalora.datasets.read;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PushbackInputStream;

/** Opens the right {@link RecordReader} for a file: {@code .parquet} by name, a JSON array by its first byte. */
public final class RecordReaders {
    private RecordReaders() {}

    /** How a file is laid out; decided from its name and first non-blank byte. */
    public enum Layout { JSON_LINES, JSON_ARRAY, PARQUET }

    /**
     * A JSONL reader over the lines that start in bytes [start, end) of a file, numbering them from
     * {@code firstLine}; {@code start} must be the start of a line. Its {@link RecordReader#fileSha256()} covers
     * only that range.
     */
    public static RecordReader openJsonLinesRange(String location, Configuration conf, RecordFormat format,
                                                  RecordValidator.Limits limits, long start, long end,
                                                  long firstLine) throws IOException {
        Path path = new Path(location);
        FSDataInputStream raw = path.getFileSystem(conf).open(path, 1 << 16);
        raw.seek(start);
        InputStream in = end < 0 ? raw : new BoundedInputStream(raw, end - start);
        return new JsonLinesReader(location, in, new RecordValidator(format, limits), firstLine);
    }

    /** At most {@code remaining} bytes of the underlying stream. */
    private static final class BoundedInputStream extends FilterInputStream {
        private long remaining;

        BoundedInputStream(InputStream in, long remaining) {
            super(in);
            this.remaining = remaining;
        }

        @Override
        public int read() throws IOException {
            if (remaining <= 0) {
                return -1;
            }
            int b = in.read();
            if (b >= 0) {
                remaining--;
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (remaining <= 0) {
                return -1;
            }
            int n = in.read(b, off, (int) Math.min(len, remaining));
            if (n > 0) {
                remaining -= n;
            }
            return n;
        }
    }

    public static RecordReader open(String location, Configuration conf, RecordFormat format,
                                    RecordValidator.Limits limits) throws IOException {
        Path path = new Path(location);
        FileSystem fs = path.getFileSystem(conf);
        RecordValidator validator = new RecordValidator(format, limits);
        if (location.endsWith(".parquet")) {
            return new ParquetRecordReader(location, fs, path, conf, validator);
        }
        FSDataInputStream raw = fs.open(path, 1 << 16);
        PushbackInputStream in = new PushbackInputStream(raw, 1 << 10);
        // Skip leading whitespace and a UTF-8 BOM only to look; everything is pushed back for the hash.
        byte[] head = new byte[1 << 10];
        int n = in.readNBytes(head, 0, head.length);
        int i = 0;
        if (n >= 3 && (head[0] & 0xff) == 0xEF && (head[1] & 0xff) == 0xBB && (head[2] & 0xff) == 0xBF) {
            i = 3;
        }
        while (i < n && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) {
            i++;
        }
        boolean array = i < n && head[i] == '[';
        if (n > 0) {
            in.unread(head, 0, n);
        }
        return array ? new JsonArrayReader(location, in, validator) : new JsonLinesReader(location, in, validator);
    }
}
