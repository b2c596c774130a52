package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Cuts a large JSONL file into line-aligned byte ranges so several tasks can tokenize it. One sequential pass per
 * file (I/O bound, far cheaper than tokenizing) finds, for every multiple k*S of the split size, the first line
 * that starts at or after it, and that line's number, so every split still reports {@code file:line} record ids.
 * The same pass hashes the file. Split points depend only on the bytes and S, so the output stays deterministic.
 */
final class JsonlSplits {
    private JsonlSplits() {}

    /** The units of one file: one per split; a JSON array (first non-blank byte '[') stays whole. */
    static List<InputUnit> split(int fileIndex, String location, long splitBytes, Configuration conf)
            throws IOException {
        Path p = new Path(location);
        FileSystem fs = p.getFileSystem(conf);
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        List<long[]> starts = new ArrayList<>();        // {byte offset, line number} of each split's first line
        starts.add(new long[] {0, 1});
        long nextBoundary = splitBytes;
        long pos = 0;
        long line = 1;
        boolean sawContent = false;
        boolean array = false;
        byte[] buf = new byte[1 << 16];
        try (FSDataInputStream in = fs.open(p)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
                for (int i = 0; i < n; i++) {
                    byte b = buf[i];
                    if (!sawContent && b != ' ' && b != '\n' && b != '\r' && b != '\t' && (b & 0xff) != 0xEF
                            && (b & 0xff) != 0xBB && (b & 0xff) != 0xBF) {
                        sawContent = true;
                        array = b == '[';
                    }
                    if (b == '\n') {
                        line++;
                        long lineStart = pos + i + 1;
                        if (lineStart >= nextBoundary) {
                            starts.add(new long[] {lineStart, line});
                            nextBoundary = (lineStart / splitBytes + 1) * splitBytes;
                        }
                    }
                }
                pos += n;
            }
        }
        String sha = HexFormat.of().formatHex(md.digest());
        if (array) {
            return List.of(new InputUnit(fileIndex, 0, location, 0, -1, 1, sha));
        }
        // A boundary at the very end of the file starts no line.
        if (starts.size() > 1 && starts.getLast()[0] >= pos) {
            starts.removeLast();
        }
        List<InputUnit> units = new ArrayList<>(starts.size());
        for (int k = 0; k < starts.size(); k++) {
            long end = k + 1 < starts.size() ? starts.get(k + 1)[0] : -1;
            units.add(new InputUnit(fileIndex, k, location, starts.get(k)[0], end, starts.get(k)[1], sha));
        }
        return units;
    }
}
