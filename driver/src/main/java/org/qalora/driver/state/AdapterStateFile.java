package org.qalora.driver.state;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;

/**
 * Reads and writes an {@link AdapterTensors} as one safetensors file (so any safetensors tool can inspect a
 * checkpoint): for every PEFT key {@code K} the tensors {@code K} (weights), {@code K.adam_m} and {@code K.adam_v},
 * all F32 little-endian, and metadata {@code format}, {@code step} and {@code keys} (the key order, because JSON
 * object order is not guaranteed by every writer). Extra metadata (e.g. tokens trained) rides along as strings.
 */
public final class AdapterStateFile {
    public static final String FORMAT = "qalora-adapter-state-v1";
    private static final ObjectMapper JSON = new ObjectMapper();

    private AdapterStateFile() {}

    /** What {@link #read} returns: the state and the extra metadata written with it. */
    public record Contents(AdapterTensors state, Map<String, String> metadata) {}

    /**
     * Writes {@code state} to {@code target} atomically: into a temporary name {@code tempName} in the same
     * directory (which must be unique to this writer, e.g. per task attempt), then renamed to {@code target}.
     * Returns the SHA-256 of the bytes written. If {@code target} already exists (an earlier attempt of the same
     * deterministic task won the race), the temporary file is removed and the existing one is kept.
     */
    public static String write(Storage storage, Path target, String tempName, AdapterTensors state,
                               Map<String, String> extraMetadata) {
        Path tmp = new Path(target.getParent(), tempName);
        FileSystem fs = storage.fs(target);
        MessageDigest md = Storage.sha256();
        try {
            try (FSDataOutputStream raw = fs.create(tmp, false);
                 OutputStream out = new DigestOutputStream(raw, md)) {
                writeTo(out, state, extraMetadata);
                out.flush();
                raw.hsync();
            }
            if (!storage.renameToFresh(tmp, target)) {
                if (!storage.exists(target)) {
                    throw new IOException("rename of " + tmp + " failed");
                }
                storage.deleteQuietly(tmp);
                return storage.sha256(target);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            storage.deleteQuietly(tmp);
            throw Storage.failure("write adapter state", target, e);
        }
    }

    public static void writeTo(OutputStream out, AdapterTensors state, Map<String, String> extraMetadata)
            throws IOException {
        List<String> keys = state.keys();
        Map<String, Object> header = new LinkedHashMap<>();
        Map<String, String> meta = new LinkedHashMap<>(extraMetadata);
        meta.put("format", FORMAT);
        meta.put("step", Long.toString(state.step()));
        meta.put("keys", JSON.writeValueAsString(keys));
        header.put("__metadata__", meta);
        long offset = 0;
        for (String k : keys) {
            AdapterTensors.Tensor t = state.tensor(k);
            long bytes = 4L * t.size();
            for (String suffix : new String[] {"", ".adam_m", ".adam_v"}) {
                header.put(k + suffix, Map.of("dtype", "F32", "shape", t.shape(), "data_offsets", new long[] {offset, offset + bytes}));
                offset += bytes;
            }
        }
        byte[] headerBytes = JSON.writeValueAsBytes(header);
        int padded = (headerBytes.length + 7) / 8 * 8; // safetensors: pad the header with spaces to 8 bytes
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
        out.write(len.array());
        out.write(headerBytes);
        for (int i = headerBytes.length; i < padded; i++) {
            out.write(' ');
        }
        for (String k : keys) {
            AdapterTensors.Tensor t = state.tensor(k);
            writeFloats(out, t.weights());
            writeFloats(out, t.adamM());
            writeFloats(out, t.adamV());
        }
    }

    public static Contents read(Storage storage, Path file) {
        try (InputStream in = storage.fs(file).open(file)) {
            return readFrom(in, file.toString());
        } catch (IOException e) {
            throw Storage.failure("read adapter state", file, e);
        }
    }

    public static Contents readFrom(InputStream input, String name) throws IOException {
        DataInputStream in = new DataInputStream(input);
        byte[] lenBytes = new byte[8];
        in.readFully(lenBytes);
        long headerLen = ByteBuffer.wrap(lenBytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (headerLen <= 0 || headerLen > (64 << 20)) {
            throw new IOException(name + ": not a safetensors adapter state (header length " + headerLen + ")");
        }
        byte[] headerBytes = new byte[(int) headerLen];
        in.readFully(headerBytes);
        Map<String, Object> header = JSON.readValue(new String(headerBytes, StandardCharsets.UTF_8).trim(),
                new TypeReference<LinkedHashMap<String, Object>>() {});
        @SuppressWarnings("unchecked")
        Map<String, String> meta = (Map<String, String>) header.remove("__metadata__");
        if (meta == null || !FORMAT.equals(meta.get("format"))) {
            throw new IOException(name + ": metadata format is " + (meta == null ? "missing" : meta.get("format"))
                    + ", expected " + FORMAT + " (not a qalora checkpoint state file)");
        }
        List<String> keys = JSON.readValue(meta.get("keys"), new TypeReference<List<String>>() {});
        long step = Long.parseLong(meta.get("step"));
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        long expectedOffset = 0;
        for (String k : keys) {
            long[] shape = shapeOf(header, k, name);
            int n = (int) AdapterTensors.numel(shape);
            float[][] parts = new float[3][];
            String[] suffixes = {"", ".adam_m", ".adam_v"};
            for (int p = 0; p < 3; p++) {
                long[] offsets = offsetsOf(header, k + suffixes[p], name);
                if (offsets[0] != expectedOffset || offsets[1] - offsets[0] != 4L * n) {
                    throw new IOException(name + ": tensor " + k + suffixes[p] + " has data_offsets " + offsets[0] + ".."
                            + offsets[1] + ", expected " + expectedOffset + ".." + (expectedOffset + 4L * n));
                }
                expectedOffset = offsets[1];
                parts[p] = readFloats(in, n, name, k + suffixes[p]);
            }
            tensors.put(k, new AdapterTensors.Tensor(shape, parts[0], parts[1], parts[2]));
        }
        Map<String, String> extra = new LinkedHashMap<>(meta);
        extra.remove("format");
        extra.remove("step");
        extra.remove("keys");
        return new Contents(new AdapterTensors(tensors, step), extra);
    }

    private static long[] shapeOf(Map<String, Object> header, String key, String name) throws IOException {
        Map<?, ?> info = (Map<?, ?>) header.get(key);
        if (info == null) {
            throw new IOException(name + ": tensor '" + key + "' listed in metadata keys is missing from the header");
        }
        List<?> dims = (List<?>) info.get("shape");
        long[] shape = new long[dims.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = ((Number) dims.get(i)).longValue();
        }
        return shape;
    }

    private static long[] offsetsOf(Map<String, Object> header, String key, String name) throws IOException {
        Map<?, ?> info = (Map<?, ?>) header.get(key);
        if (info == null || !"F32".equals(info.get("dtype"))) {
            throw new IOException(name + ": tensor '" + key + "' is missing or not F32");
        }
        List<?> o = (List<?>) info.get("data_offsets");
        return new long[] {((Number) o.get(0)).longValue(), ((Number) o.get(1)).longValue()};
    }

    private static void writeFloats(OutputStream out, float[] values) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            if (!buf.hasRemaining()) {
                out.write(buf.array(), 0, buf.position());
                buf.clear();
            }
            buf.putFloat(v);
        }
        out.write(buf.array(), 0, buf.position());
    }

    private static float[] readFloats(DataInputStream in, int n, String name, String key) throws IOException {
        byte[] bytes = new byte[4 * n];
        try {
            in.readFully(bytes);
        } catch (java.io.EOFException e) {
            throw new IOException(name + ": truncated in tensor " + key + " (a half-written file?)", e);
        }
        float[] out = new float[n];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    /** Serialises to bytes (used by tests and small in-memory transfers). */
    public static byte[] toBytes(AdapterTensors state, Map<String, String> extra) {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try {
            writeTo(bos, state, extra);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bos.toByteArray();
    }
}
