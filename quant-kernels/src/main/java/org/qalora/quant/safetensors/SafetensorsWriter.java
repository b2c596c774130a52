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
        // HF readers (transformers' safetensors loading) expect {"format": "pt"}.
        metadata.put("format", "pt");
    }

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

    public boolean contains(String name) { return tensors.containsKey(name); }

    /** Total tensor bytes (what HF calls total_size in the index). */
    public long totalBytes() {
        long total = 0;
        for (Pending p : tensors.values()) {
            total += p.data().length;
        }
        return total;
    }

    private List<Pending> ordered() {
        List<Pending> list = new ArrayList<>(tensors.values());
        list.sort(Comparator.<Pending>comparingInt(p -> -p.info().dtype().alignmentRank())
                .thenComparing(p -> p.info().name()));
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
        ObjectNode index = PRETTY.createObjectNode();
        index.putObject("metadata").put("total_size", totalBytes());
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
        ObjectNode map = index.putObject("weight_map");
        weightMap.forEach(map::put);
        byte[] indexBytes = (PRETTY.writeValueAsString(index) + "\n").getBytes(StandardCharsets.UTF_8);
        paths.writeAtomically(HadoopPaths.child(directory, Checkpoint.INDEX_FILE), out -> out.write(indexBytes));
        written.add(Checkpoint.INDEX_FILE);
        return written;
    }

    private void writeFile(List<Pending> list, OutputStream out) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Pending p : list) {
            ObjectNode entry = header.putObject(p.info().name());
            entry.put("dtype", p.info().dtype().name());
            ArrayNode shape = entry.putArray("shape");
            for (long d : p.info().shape()) {
                shape.add(d);
            }
            ArrayNode offsets = entry.putArray("data_offsets");
            offsets.add(offset);
            offset += p.data().length;
            offsets.add(offset);
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        byte[] headerBytes = new byte[padded];
        System.arraycopy(json, 0, headerBytes, 0, json.length);
        java.util.Arrays.fill(headerBytes, json.length, padded, (byte) ' ');
        byte[] length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array();
        out.write(length);
        out.write(headerBytes);
        for (Pending p : list) {
            out.write(p.data());
        }
    }
}
