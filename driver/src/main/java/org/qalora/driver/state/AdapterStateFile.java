package org.qalora.driver.state;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.TensorInfo;

/**
 * Reads and writes an {@link AdapterTensors} as one safetensors file (so any safetensors tool can inspect a
 * checkpoint): for every key {@code K} the tensors {@code K} (weights), {@code K.adam_m} and {@code K.adam_v}, all
 * F32, and metadata {@code format}, {@code step} and {@code keys} (the key order: the file orders tensors by name,
 * and the rounds need the trainer's order back). Extra metadata (e.g. tokens trained) rides along as strings.
 *
 * <p>The bytes are quant-kernels' {@link org.qalora.quant.safetensors.SafetensorsStreamWriter} (the layout of its
 * {@code SafetensorsWriter}) / {@link SafetensorsFile}; this class adds only the
 * checkpoint's naming and its commit protocol (checksum while writing, keep an earlier attempt's file).
 *
 * <p>Keys are not interpreted: the rounds run any {@code SlotTrainer}, so this is deliberately not the worker's
 * {@code AdapterState} file, which is tied to a model (PEFT keys, {@code adapter_config}).
 */
public final class AdapterStateFile {
    public static final String FORMAT = "qalora-adapter-state-v1";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ADAM_M = ".adam_m";
    private static final String ADAM_V = ".adam_v";
    private static final List<String> RESERVED = List.of("format", "step", "keys");

    private AdapterStateFile() {}

    /** What {@link #read} returns: the state and the extra metadata written with it. */
    public record Contents(AdapterTensors state, Map<String, String> metadata) {}

    /**
     * Writes {@code state} to {@code target} atomically: into a temporary name {@code tempName} in the same
     * directory (which must be unique to this writer, e.g. per task attempt), then renamed to {@code target}.
     * Returns the SHA-256 of the bytes written, computed as they stream out. If {@code target} already exists (an
     * earlier attempt of the same deterministic task won the race), the temporary file is removed and the existing
     * one is kept.
     */
    public static String write(Storage storage, Path target, String tempName, AdapterTensors state,
                               Map<String, String> extraMetadata) {
        return write(storage, target, tempName, body(state, extraMetadata));
    }

    /** The bytes of a state file, written to a stream (the commit protocol around them is {@link #write}'s). */
    @FunctionalInterface
    interface Body {
        void writeTo(OutputStream out) throws IOException;
    }

    /**
     * Writes what {@code body} writes to {@code target} with {@link #write}'s protocol (temporary name, rename, an
     * earlier attempt's file kept); returns the SHA-256 of the file's bytes, computed as they stream out.
     */
    static String write(Storage storage, Path target, String tempName, Body body) {
        MessageDigest md = Storage.sha256();
        boolean fresh = write(storage, target, tempName, 0, raw -> new DigestOutputStream(raw, md), body);
        return fresh ? HexFormat.of().formatHex(md.digest()) : storage.sha256(target);
    }

    /**
     * The bytes of {@code state}'s file, streamed from its arrays through a small buffer: a slot's update is written
     * without a byte copy of the whole state beside it (3 x 10.65 MiB per layer at LLaMA-7B widths).
     */
    private static Body body(AdapterTensors state, Map<String, String> extraMetadata) {
        Map<String, long[]> layout = new LinkedHashMap<>();
        for (String k : state.keys()) {
            layout.put(k, state.tensor(k).shape());
        }
        return streamedBody(layout, state.step(), extraMetadata, new StreamedTensors() {
            @Override
            public AdapterTensors.Tensor tensor(String key) { return state.tensor(key); }

            @Override
            public void written(String key) {}
        });
    }

    /**
     * As {@link #write}, for a slot's update: returns the {@link SegmentDigests} of the bytes written (header and
     * each tensor), computed as they stream out, so the tasks that average the updates can each check just the
     * tensors they read.
     */
    public static SegmentDigests writeUpdate(Storage storage, Path target, String tempName, AdapterTensors state,
                                             Map<String, String> extraMetadata) {
        return writeUpdate(storage, target, tempName, state, extraMetadata, 0);
    }

    /**
     * As {@link #writeUpdate(Storage, Path, String, AdapterTensors, Map)}, with {@code replication} copies of the file
     * where that is fewer than the file system's default ({@link Storage#createNew}; 0: the default).
     */
    public static SegmentDigests writeUpdate(Storage storage, Path target, String tempName, AdapterTensors state,
                                             Map<String, String> extraMetadata, int replication) {
        SegmentDigests.Digester digester = new SegmentDigests.Digester();
        boolean fresh = write(storage, target, tempName, replication,
                raw -> new java.io.FilterOutputStream(raw) {
                    @Override
                    public void write(byte[] b, int off, int len) throws IOException {
                        out.write(b, off, len);
                        digester.write(b, off, len);
                    }

                    @Override
                    public void write(int b) throws IOException {
                        write(new byte[] {(byte) b}, 0, 1);
                    }
                }, body(state, extraMetadata));
        try {
            return fresh ? digester.finish(target.toString()) : SegmentDigests.of(storage, target);
        } catch (IOException e) {
            throw Storage.failure("checksum", target, e);
        }
    }

    /**
     * The commit protocol of every state file: {@code body} through {@code wrap} into {@code tempName} (created with
     * {@code replication} copies, 0: the file system's default; {@link Storage#createNew}), flushed and
     * hsync'ed, then renamed to {@code target}; false if an earlier attempt's file was already in place (and kept).
     * Whatever stops the body (an I/O error, or a failure of the computation that feeds a streamed body) removes the
     * temporary file.
     */
    private static boolean write(Storage storage, Path target, String tempName, int replication,
                                 java.util.function.Function<OutputStream, OutputStream> wrap, Body body) {
        Path tmp = new Path(target.getParent(), tempName);
        try {
            try (FSDataOutputStream raw = storage.createNew(tmp, replication);
                 OutputStream out = wrap.apply(raw)) {
                body.writeTo(out);
                out.flush();
                raw.hsync();
            }
            if (!storage.renameToFresh(tmp, target)) {
                if (!storage.exists(target)) {
                    throw new IOException("rename of " + tmp + " failed");
                }
                storage.deleteQuietly(tmp);
                return false;
            }
            return true;
        } catch (IOException e) {
            storage.deleteQuietly(tmp);
            throw Storage.failure("write adapter state", target, e);
        } catch (RuntimeException | Error e) {
            storage.deleteQuietly(tmp);
            throw e;
        }
    }

    /**
     * The tensors of a state file written as they become ready ({@link #writeStreamed}): {@link #tensor} returns
     * key's tensor, waiting for it (or throws what prevented it); {@link #written} says the file now holds all
     * three of key's tensors, so the caller may drop it.
     */
    public interface StreamedTensors {
        AdapterTensors.Tensor tensor(String key);

        void written(String key);
    }

    /**
     * As {@link #write}, for a state whose keys and shapes ({@code layout}, in key order) are known before its
     * tensors: the header is written first, then each tensor as {@code source} hands it over, in file order, so a
     * writer holds a few keys instead of the whole state and the SHA-256 and the write overlap the computation
     * that produces the tensors. The bytes are exactly those {@link #write} writes for the same state (it streams
     * the same way, from a state already computed). Returns their SHA-256.
     */
    public static String writeStreamed(Storage storage, Path target, String tempName, Map<String, long[]> layout,
                                       long step, Map<String, String> extraMetadata, StreamedTensors source) {
        return write(storage, target, tempName, streamedBody(layout, step, extraMetadata, source));
    }

    /** The bytes {@link #writeStreamed} writes: the header, then each tensor as {@code source} hands it over. */
    private static Body streamedBody(Map<String, long[]> layout, long step, Map<String, String> extraMetadata,
                                     StreamedTensors source) {
        Map<String, String> metadata;
        try {
            metadata = metadata(List.copyOf(layout.keySet()), step, extraMetadata);
        } catch (JsonProcessingException e) {
            throw new java.io.UncheckedIOException("cannot encode the adapter state's key list", e);
        }
        List<TensorInfo> infos = new java.util.ArrayList<>();
        Map<String, String> keyOf = new java.util.HashMap<>();
        for (Map.Entry<String, long[]> e : layout.entrySet()) {
            for (int part = 0; part < 3; part++) {
                String name = Reader.tensorName(e.getKey(), part);
                infos.add(new TensorInfo(name, DType.F32, e.getValue()));
                keyOf.put(name, e.getKey());
            }
        }
        return out -> {
            Map<String, Integer> done = new java.util.HashMap<>();
            java.nio.ByteBuffer chunk = java.nio.ByteBuffer.allocate(1 << 20).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            org.qalora.quant.safetensors.SafetensorsStreamWriter.write(out, infos, metadata, (t, o) -> {
                String key = keyOf.get(t.name());
                AdapterTensors.Tensor tensor = source.tensor(key);
                float[] data = t.name().equals(key) ? tensor.weights()
                        : t.name().endsWith(ADAM_M) ? tensor.adamM() : tensor.adamV();
                // Little-endian floats through one 1 MiB buffer: no byte copy of the whole tensor.
                for (int i = 0; i < data.length; ) {
                    int n = Math.min(data.length - i, chunk.capacity() / Float.BYTES);
                    chunk.clear();
                    chunk.asFloatBuffer().put(data, i, n);
                    o.write(chunk.array(), 0, n * Float.BYTES);
                    i += n;
                }
                if (done.merge(key, 1, Integer::sum) == 3) {
                    source.written(key);
                }
            });
        };
    }

    /** The SHA-256 of the file {@link #write} would write for {@code state}, computed without writing it. */
    public static String sha256Of(AdapterTensors state, Map<String, String> extraMetadata) {
        MessageDigest md = Storage.sha256();
        try (OutputStream out = new DigestOutputStream(OutputStream.nullOutputStream(), md)) {
            body(state, extraMetadata).writeTo(out);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot encode the adapter state", e);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** A state file's metadata: {@code extraMetadata}, then {@code format}, {@code step} and {@code keys}. */
    static Map<String, String> metadata(List<String> keys, long step, Map<String, String> extraMetadata)
            throws JsonProcessingException {
        for (String reserved : RESERVED) {
            if (extraMetadata.containsKey(reserved)) {
                throw new IllegalArgumentException("extra metadata may not use the reserved key '" + reserved + "'");
            }
        }
        Map<String, String> m = new LinkedHashMap<>(extraMetadata);
        m.put("format", FORMAT);
        m.put("step", Long.toString(step));
        m.put("keys", JSON.writeValueAsString(keys));
        return m;
    }

    public static Contents read(Storage storage, Path file) {
        try (Reader r = open(storage, file)) {
            Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
            for (String k : r.keys()) {
                tensors.put(k, new AdapterTensors.Tensor(r.shape(k), r.weights(k), r.adamM(k), r.adamV(k)));
            }
            return new Contents(new AdapterTensors(tensors, r.step()), r.metadata());
        }
    }

    /**
     * A state stored as several part files (a round averaged on the executors, one part per key range), read in part
     * order into one state: the keys in part order, one step (every part must carry the same), extra metadata of
     * the first part. A single file reads as {@link #read(Storage, Path)}.
     */
    public static Contents read(Storage storage, List<Path> parts) {
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        long step = -1;
        Map<String, String> metadata = null;
        for (Path part : parts) {
            Contents c = read(storage, part);
            if (step >= 0 && c.state().step() != step) {
                throw new IllegalStateException(part + " is at optimizer step " + c.state().step() + " but "
                        + parts.get(0) + " is at " + step + ": the parts are not of one state");
            }
            step = c.state().step();
            metadata = metadata == null ? c.metadata() : metadata;
            for (String k : c.state().keys()) {
                if (tensors.put(k, c.state().tensor(k)) != null) {
                    throw new IllegalStateException(part + " repeats key '" + k + "' of an earlier part");
                }
            }
        }
        return new Contents(new AdapterTensors(tensors, step), metadata);
    }

    /** The keys and shapes of a state stored as {@code parts}, in key order, from their headers alone. */
    public static Map<String, long[]> layout(Storage storage, List<Path> parts) {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (Path part : parts) {
            shapes.putAll(layout(storage, part));
        }
        return shapes;
    }

    /** The keys and shapes of a state file, in key order, from its header alone (no tensor is read). */
    public static Map<String, long[]> layout(Storage storage, Path file) {
        try (Reader r = open(storage, file)) {
            Map<String, long[]> shapes = new LinkedHashMap<>();
            for (String k : r.keys()) {
                shapes.put(k, r.shape(k));
            }
            return shapes;
        }
    }

    /**
     * Opens a state file for reading tensor by tensor (local files are memory-mapped, others read by position), with
     * its header checked as {@link #read} checks it. The driver averages slot updates through this, so it never
     * holds a whole update on its heap. Thread-safe reads; close it when done.
     */
    public static Reader open(Storage storage, Path file) {
        SafetensorsFile f = null;
        try {
            f = SafetensorsFile.open(file.toString(), storage.paths());
            return new Reader(f);
        } catch (IOException e) {
            if (f != null) {
                try {
                    f.close();
                } catch (IOException ignored) {
                    // the header was bad: the failure below says so
                }
            }
            throw Storage.failure("read adapter state", file, e);
        }
    }

    /** An open state file: its keys, shapes, step and extra metadata, and each tensor on request. */
    public static final class Reader implements AutoCloseable {
        private final SafetensorsFile file;
        private final List<String> keys;
        private final Map<String, long[]> shapes = new LinkedHashMap<>();
        private final long step;
        private final Map<String, String> extra;

        private Reader(SafetensorsFile f) throws IOException {
            this.file = f;
            String name = f.location();
            Map<String, String> meta = f.metadata();
            if (!FORMAT.equals(meta.get("format"))) {
                throw new IOException(name + ": metadata format is " + (meta.containsKey("format") ? meta.get("format") : "missing")
                        + ", expected " + FORMAT + " (not a qalora checkpoint state file)");
            }
            try {
                keys = JSON.readValue(String.valueOf(meta.get("keys")), new TypeReference<List<String>>() {});
                step = Long.parseLong(String.valueOf(meta.get("step")));
            } catch (IOException | NumberFormatException e) {
                throw new IOException(name + ": metadata 'keys' (" + meta.get("keys") + ") or 'step' (" + meta.get("step")
                        + ") is unreadable: the file is corrupt", e);
            }
            for (String k : keys) {
                long[] shape = f32Shape(f, k);
                for (String part : new String[] {k + ADAM_M, k + ADAM_V}) {
                    if (!Arrays.equals(shape, f32Shape(f, part))) {
                        throw new IOException(name + ": tensor '" + part + "' has shape "
                                + Arrays.toString(f.info(part).shape()) + ", but '" + k + "' has " + Arrays.toString(shape));
                    }
                }
                shapes.put(k, shape);
            }
            extra = new LinkedHashMap<>(meta);
            RESERVED.forEach(extra::remove);
        }

        public List<String> keys() { return List.copyOf(keys); }

        public long[] shape(String key) { return shapes.get(key).clone(); }

        public long step() { return step; }

        /** The extra metadata written with the state (e.g. target_tokens). */
        public Map<String, String> metadata() { return new LinkedHashMap<>(extra); }

        /**
         * Hands the raw little-endian bytes of file tensor {@code name} (a key, or a key plus .adam_m / .adam_v) to
         * {@code reader}: a view of the mapping for local files, a copy that lives only during the call otherwise.
         */
        public <T> T withRawBytes(String name, java.util.function.Function<java.lang.foreign.MemorySegment, T> reader) {
            try {
                return file.withBytes(name, reader);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot read tensor '" + name + "' of " + file.location()
                        + ": " + e.getMessage(), e);
            }
        }

        /**
         * File tensor {@code name}'s raw little-endian bytes as a read-only view of the file's mapping, valid until
         * {@link #close}, so a caller can walk several files' tensors side by side block by block without copying
         * them; null when the file is not mapped (not local), where {@link #withRawBytes} is the way to read it.
         */
        public java.lang.foreign.MemorySegment mappedBytes(String name) {
            if (!file.isMapped()) {
                return null;
            }
            try {
                return file.segment(name);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot read tensor '" + name + "' of " + file.location()
                        + ": " + e.getMessage(), e);
            }
        }

        /** The file tensor names of {@code key}'s part 0 (weights), 1 (Adam m), 2 (Adam v). */
        public static String tensorName(String key, int part) {
            return part == 0 ? key : part == 1 ? key + ADAM_M : key + ADAM_V;
        }

        public String location() { return file.location(); }

        /**
         * Copies file tensor {@code name}'s raw bytes to {@code out} in bounded chunks (never the whole tensor, let
         * alone the state, on the heap): how a state's parts are concatenated into one file.
         */
        public void copyTo(String name, OutputStream out) throws IOException {
            file.copyTo(name, out);
        }

        public float[] weights(String key) { return floats(key); }

        public float[] adamM(String key) { return floats(key + ADAM_M); }

        public float[] adamV(String key) { return floats(key + ADAM_V); }

        private float[] floats(String name) {
            try {
                return file.floats(name);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot read tensor '" + name + "' of " + file.location()
                        + ": " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            try {
                file.close();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot close " + file.location(), e);
            }
        }
    }

    private static long[] f32Shape(SafetensorsFile f, String key) throws IOException {
        if (!f.contains(key)) {
            throw new IOException(f.location() + ": tensor '" + key + "' (listed in metadata keys) is missing");
        }
        TensorInfo info = f.info(key);
        if (info.dtype() != DType.F32) {
            throw new IOException(f.location() + ": tensor '" + key + "' is " + info.dtype() + ", expected F32");
        }
        return info.shape();
    }
}
