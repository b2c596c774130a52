package org.qalora.quant.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.qalora.quant.io.HadoopPaths;

/**
 * Collects tensors in memory, then writes them as one safetensors file or as HF-style shards with
 * {@code model.safetensors.index.json}; every file is written atomically (temporary name, then rename).
 *
 * <p>Layout matches the reference writer (Rust {@code safetensors}): tensors ordered by dtype alignment (8-byte
 * types first, then 4, 2, 1) and then by name, so each tensor starts aligned to its element size; the JSON header
 * is compact, has {@code __metadata__} first, and is padded with spaces to a multiple of 8 bytes. Insertion order
 * does not matter: the same tensors always give the same bytes.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper PRETTY = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private record Pending(TensorInfo info, byte[] data) {}

    private final Map<String, Pending> tensors = new LinkedHashMap<>();
    private final Map<String, String> metadata = new TreeMap<>();

    public SafetensorsWriter() {
        metadata.putAll(DEFAULT_METADATA);
    }

    /** HF readers (transformers' safetensors loading) expect {"format": "pt"}. */
    public static final Map<String, String> DEFAULT_METADATA = Map.of("format", "pt");

    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Adds raw little-endian data of any supported dtype. */
    public SafetensorsWriter addBytes(String name, DType dtype, byte[] littleEndian, long... shape) {
        TensorInfo info = new TensorInfo(name, dtype, shape);
        if (name.equals("__metadata__") || name.isEmpty()) {
            throw new IllegalArgumentException("tensor name \"" + name + "\" is reserved or empty");
        }
        if (info.byteSize() != littleEndian.length) {
            throw new IllegalArgumentException("tensor " + name + ": shape " + info.shapeString() + " x " + dtype
                    + " needs " + info.byteSize() + " bytes, got " + littleEndian.length);
        }
        if (tensors.containsKey(name)) {
            throw new IllegalArgumentException("tensor " + name + " added twice");
        }
        tensors.put(name, new Pending(info, littleEndian));
        return this;
    }

    /** Adds floats stored as F32, F16 or BF16 (narrowing rounds to nearest even, like PyTorch's casts). */
    public SafetensorsWriter addFloats(String name, DType dtype, float[] data, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(data.length, dtype.size())).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().put(data);
            case F16 -> {
                for (float v : data) {
                    b.putShort(Float.floatToFloat16(v));
                }
            }
            case BF16 -> {
                for (float v : data) {
                    b.putShort(toBf16(v));
                }
            }
            default -> throw new IllegalArgumentException("tensor " + name + ": " + dtype + " is not a float dtype");
        }
        return addBytes(name, dtype, b.array(), shape);
    }

    /** Nearest-even rounding to bfloat16 (the top 16 bits of a float), NaN kept quiet. */
    static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if (Float.isNaN(v)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    public SafetensorsWriter addInts(String name, int[] data, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(data.length, 4)).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(data);
        return addBytes(name, DType.I32, b.array(), shape);
    }

    public SafetensorsWriter addLongs(String name, long[] data, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(data.length, 8)).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().put(data);
        return addBytes(name, DType.I64, b.array(), shape);
    }

    /** Copies a tensor unchanged (same dtype, shape, bytes), e.g. embeddings and norms into a quantized model. */
    public SafetensorsWriter copy(Checkpoint from, String name) throws IOException {
        TensorInfo info = from.info(name);
        return addBytes(name, info.dtype(), from.bytes(name), info.shape());
    }

    public List<String> names() { return new ArrayList<>(tensors.keySet()); }

    /** The name, dtype and shape of an added tensor. */
    public TensorInfo info(String name) { return pending(name).info(); }

    /** The little-endian data of an added tensor (the writer's own array: do not modify). */
    public byte[] bytes(String name) { return pending(name).data(); }

    private Pending pending(String name) {
        Pending p = tensors.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no tensor " + name + " was added");
        }
        return p;
    }

    public boolean contains(String name) { return tensors.containsKey(name); }

    /** Total tensor bytes (what HF calls total_size in the index). */
    public long totalBytes() {
        long total = 0;
        for (Pending p : tensors.values()) {
            total += p.data().length;
        }
        return total;
    }

    /**
     * The order tensors take inside one file: 8-byte dtypes first, then 4, 2, 1, each by name, so every tensor starts
     * aligned to its element size. Shared with {@link SafetensorsStreamWriter}, so both give the same bytes.
     */
    static final Comparator<TensorInfo> FILE_ORDER = Comparator.<TensorInfo>comparingInt(t -> -t.dtype().alignmentRank())
            .thenComparing(TensorInfo::name);

    private List<Pending> ordered() {
        List<Pending> list = new ArrayList<>(tensors.values());
        list.sort(Comparator.comparing(Pending::info, FILE_ORDER));
        return list;
    }

    /** Writes everything into one file at {@code location}, atomically. */
    public void write(String location) throws IOException {
        write(location, HadoopPaths.defaults());
    }

    public void write(String location, HadoopPaths paths) throws IOException {
        List<Pending> all = ordered();
        paths.writeAtomically(location, out -> writeFile(all, out));
    }

    /**
     * Writes the one-file layout to {@code out} (not atomic by itself): for callers that run their own commit protocol
     * around the bytes, e.g. checksumming them on the way or renaming with other semantics.
     */
    public void writeTo(OutputStream out) throws IOException {
        writeFile(ordered(), out);
    }

    /**
     * Writes a checkpoint directory's weights: a single {@code model.safetensors} when everything fits in
     * {@code maxShardBytes}, else shards {@code model-00001-of-0000N.safetensors} (filled greedily in file order; a
     * tensor larger than the limit gets a shard of its own, as HF does) plus {@code model.safetensors.index.json},
     * written last so a reader never sees an index pointing at missing shards. Returns the file names written.
     */
    public List<String> writeCheckpoint(String directory, long maxShardBytes, HadoopPaths paths) throws IOException {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("max shard size must be positive, got " + maxShardBytes);
        }
        List<Pending> all = ordered();
        List<List<Pending>> shards = new ArrayList<>();
        List<Pending> current = new ArrayList<>();
        long currentBytes = 0;
        for (Pending p : all) {
            if (!current.isEmpty() && currentBytes + p.data().length > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(p);
            currentBytes += p.data().length;
        }
        shards.add(current);
        if (shards.size() == 1) {
            paths.writeAtomically(HadoopPaths.child(directory, Checkpoint.SINGLE_FILE), out -> writeFile(all, out));
            return List.of(Checkpoint.SINGLE_FILE);
        }
        List<String> written = new ArrayList<>();
        Map<String, String> weightMap = new TreeMap<>();
        for (int s = 0; s < shards.size(); s++) {
            String fileName = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
            List<Pending> shard = shards.get(s);
            paths.writeAtomically(HadoopPaths.child(directory, fileName), out -> writeFile(shard, out));
            for (Pending p : shard) {
                weightMap.put(p.info().name(), fileName);
            }
            written.add(fileName);
        }
        byte[] indexBytes = indexJson(totalBytes(), weightMap);
        paths.writeAtomically(HadoopPaths.child(directory, Checkpoint.INDEX_FILE), out -> out.write(indexBytes));
        written.add(Checkpoint.INDEX_FILE);
        return written;
    }

    private void writeFile(List<Pending> list, OutputStream out) throws IOException {
        List<TensorInfo> infos = new ArrayList<>(list.size());
        for (Pending p : list) {
            infos.add(p.info());
        }
        out.write(header(metadata, infos));
        for (Pending p : list) {
            out.write(p.data());
        }
    }

    /**
     * The 8-byte length plus the JSON header of a file holding {@code ordered} (already in {@link #FILE_ORDER}):
     * compact, {@code __metadata__} first, padded with spaces to a multiple of 8 bytes.
     */
    static byte[] header(Map<String, String> metadata, List<TensorInfo> ordered) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (TensorInfo t : ordered) {
            ObjectNode entry = header.putObject(t.name());
            entry.put("dtype", t.dtype().name());
            ArrayNode shape = entry.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            ArrayNode offsets = entry.putArray("data_offsets");
            offsets.add(offset);
            offset += t.byteSize();
            offsets.add(offset);
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).put(json);
        while (b.hasRemaining()) {
            b.put((byte) ' ');
        }
        return b.array();
    }

    /**
     * {@code model.safetensors.index.json} as HF transformers writes it: {@code metadata.total_size} (the sum of the
     * tensors' data bytes, headers excluded) and {@code weight_map} (tensor name to shard file), keys sorted, indented,
     * with a final newline.
     */
    public static byte[] indexJson(long totalSize, Map<String, String> weightMap) throws IOException {
        ObjectNode index = PRETTY.createObjectNode();
        index.putObject("metadata").put("total_size", totalSize);
        ObjectNode map = index.putObject("weight_map");
        new TreeMap<>(weightMap).forEach(map::put);
        return (PRETTY.writeValueAsString(index) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    /** The metadata every file gets ({"format": "pt"} plus what was added). */
    Map<String, String> metadata() { return metadata; }
}
