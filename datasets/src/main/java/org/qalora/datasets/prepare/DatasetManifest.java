package org.qalora.datasets.prepare;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.SortedMap;

/**
 * {@code manifest.json} of a prepared dataset: what went in (input files with their SHA-256, every setting), what
 * came out (record and token counts, skipped records per reason, shards with checksums), and the special ids a
 * batch needs. Record {@code i} of the dataset is row {@code i - firstRecord} of the shard whose range holds it;
 * records are numbered in input order (file order, then line / element / row order).
 *
 * <p>Per-record lengths live beside it in {@code lengths.bin} (big-endian int32 pairs: num_tokens,
 * num_target_tokens, one pair per record), so a plan can be built from the manifest alone without opening a shard.
 *
 * @param datasetHash SHA-256 over the inputs' hashes and the canonical settings: equal hash, equal dataset
 */
@JsonPropertyOrder(alphabetic = false)
public record DatasetManifest(int formatVersion, String datasetHash, List<Input> inputs, Settings settings,
                              long records, long tokens, long targetTokens, SortedMap<String, Long> skipped,
                              int bosId, int eosId, int padId, List<Shard> shards, String lengthsFile,
                              String lengthsSha256) implements Serializable {

    public static final String MANIFEST = "manifest.json";
    public static final String LENGTHS = "lengths.bin";
    public static final int FORMAT_VERSION = 1;

    /** One input file. {@code format} is what it was read as (alpaca or flan), {@code layout} how. */
    public record Input(String location, String sha256, String layout, String format, long records, long skipped)
            implements Serializable {}

    /** Everything that changes the output. */
    public record Settings(String tokenizerSha256, String format, String template, int sourceMaxLen, int targetMaxLen,
                           boolean trainOnSource, int maxRecordChars, boolean skipBadRecords, int recordsPerShard,
                           long splitBytes) implements Serializable {}

    /** One shard: records [firstRecord, firstRecord + records) of the dataset. */
    public record Shard(String name, long firstRecord, long records, long bytes, String sha256) implements Serializable {}

    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(MapperFeature.SORT_PROPERTIES_ALPHABETICALLY)
            .build();

    /** The manifest as bytes: fixed key order, "\n" line ends on every OS, so equal manifests are equal bytes. */
    public byte[] toJsonBytes() {
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter().withObjectIndenter(new DefaultIndenter("  ", "\n"))
                .withArrayIndenter(new DefaultIndenter("  ", "\n"));
        try {
            return (JSON.writer(pp).writeValueAsString(this) + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    public static DatasetManifest fromJson(byte[] json, String where) {
        try {
            DatasetManifest m = JSON.readValue(json, DatasetManifest.class);
            if (m.formatVersion() != FORMAT_VERSION) {
                throw new IllegalArgumentException(where + ": manifest format version " + m.formatVersion()
                        + " is not supported (expected " + FORMAT_VERSION + "); run prepare again");
            }
            // Names are resolved against the dataset directory: they must stay in it.
            requirePlainName(m.lengthsFile(), "lengthsFile", where);
            if (m.shards() == null) {
                throw new IllegalArgumentException(where + ": field \"shards\" is missing");
            }
            for (int i = 0; i < m.shards().size(); i++) {
                Shard s = m.shards().get(i);
                if (s == null) {
                    throw new IllegalArgumentException(where + ": shards[" + i + "] is null");
                }
                requirePlainName(s.name(), "shards[" + i + "].name", where);
            }
            return m;
        } catch (IOException e) {
            throw new IllegalArgumentException(where + ": not a prepared-dataset manifest: " + e.getMessage(), e);
        }
    }

    /**
     * A name read from the manifest must be one file name inside the dataset directory: not empty, not "." or "..",
     * no "/" or "\\", no ":" (a scheme would make Hadoop's {@code new Path(dir, name)} ignore {@code dir}).
     */
    private static void requirePlainName(String name, String field, String where) {
        boolean plain = name != null && !name.isEmpty() && !name.equals(".") && !name.equals("..")
                && name.chars().noneMatch(c -> c == '/' || c == '\\' || c == ':' || c < 0x20 || c == 0x7f);
        if (!plain) {
            throw new IllegalArgumentException(where + ": " + field + " must be a file name inside the dataset directory,"
                    + " got " + (name == null ? "null" : "\"" + name + "\"") + "; the manifest is damaged or hostile");
        }
    }

    /** Reads {@code DIR/manifest.json} from any Hadoop FileSystem. */
    public static DatasetManifest read(String dir, Configuration conf) throws IOException {
        Path p = new Path(dir, MANIFEST);
        FileSystem fs = p.getFileSystem(conf);
        try (FSDataInputStream in = fs.open(p)) {
            return fromJson(in.readAllBytes(), p.toString());
        }
    }

    /**
     * Per-record lengths from {@code DIR/lengths.bin}, checked against the manifest's hash.
     *
     * @return [2][records]: num_tokens, num_target_tokens
     */
    public int[][] readLengths(String dir, Configuration conf) throws IOException {
        Path p = new Path(dir, lengthsFile);
        FileSystem fs = p.getFileSystem(conf);
        byte[] bytes;
        try (FSDataInputStream in = fs.open(p)) {
            bytes = in.readAllBytes();
        }
        if (!sha256(bytes).equals(lengthsSha256) || bytes.length != records * 8) {
            throw new IOException(p + ": does not match manifest.json (checksum or size); the dataset directory "
                    + "is damaged, run prepare again");
        }
        int n = Math.toIntExact(records);
        int[][] out = new int[2][n];
        try (DataInputStream in = new DataInputStream(new java.io.ByteArrayInputStream(bytes))) {
            for (int i = 0; i < n; i++) {
                out[0][i] = in.readInt();
                out[1][i] = in.readInt();
            }
        }
        return out;
    }

    /** The shard holding record {@code index}. */
    @JsonIgnore
    public Shard shardOf(long index) {
        int lo = 0;
        int hi = shards.size() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (shards.get(mid).firstRecord() <= index) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Shard s = shards.get(lo);
        if (index < s.firstRecord() || index >= s.firstRecord() + s.records()) {
            throw new IndexOutOfBoundsException("record " + index + " is not in the dataset (" + records + " records)");
        }
        return s;
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
