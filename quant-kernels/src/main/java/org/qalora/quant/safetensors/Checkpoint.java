package org.qalora.quant.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;

/**
 * A model directory as HF {@code save_pretrained} writes it: either one {@code model.safetensors}, or shards listed
 * in {@code model.safetensors.index.json} ({@code weight_map}: tensor name to shard file). Reading a tensor by name
 * works the same either way. All shards are opened (headers validated) up front, so a broken shard fails at open,
 * not in the middle of training.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final String directory;
    private final HadoopPaths paths;
    private final Map<String, SafetensorsFile> byTensor;   // name -> the file that holds it, in index order
    private final List<SafetensorsFile> files;
    private LlamaConfig config;   // read on first use: codecs ask for it once per projection

    private Checkpoint(String directory, HadoopPaths paths, Map<String, SafetensorsFile> byTensor, List<SafetensorsFile> files) {
        this.directory = directory;
        this.paths = paths;
        this.byTensor = byTensor;
        this.files = files;
    }

    public static Checkpoint open(String directory) throws IOException {
        return open(directory, HadoopPaths.defaults());
    }

    public static Checkpoint open(String directory, HadoopPaths paths) throws IOException {
        String index = HadoopPaths.child(directory, INDEX_FILE);
        String single = HadoopPaths.child(directory, SINGLE_FILE);
        if (paths.exists(index)) {
            return openSharded(directory, index, paths);
        }
        if (!paths.exists(single)) {
            throw new FormatException(directory + ": neither " + SINGLE_FILE + " nor " + INDEX_FILE
                    + " found: point at a directory holding an HF safetensors checkpoint");
        }
        SafetensorsFile file = SafetensorsFile.open(single, paths);
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        for (String name : file.names()) {
            byTensor.put(name, file);
        }
        return new Checkpoint(directory, paths, Collections.unmodifiableMap(byTensor), List.of(file));
    }

    private static Checkpoint openSharded(String directory, String index, HadoopPaths paths) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(new String(paths.readAllBytes(index), StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new FormatException(index + ": invalid JSON (" + e.getOriginalMessage() + ")", e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new FormatException(index + ": missing the \"weight_map\" object (tensor name -> shard file)");
        }
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
                String shardName = e.getValue().asText();
                // A shard name is a plain file name: no separators, no "." or "..", no scheme ("s3a:x"), so that an
                // index cannot point the reader outside the checkpoint directory.
                if (!e.getValue().isTextual() || !HadoopPaths.isPlainFileName(shardName)) {
                    throw new FormatException(index + ": weight_map entry " + e.getKey() + " must name a shard file in the"
                            + " same directory, got " + e.getValue());
                }
                SafetensorsFile shard = shards.get(shardName);
                if (shard == null) {
                    String location = HadoopPaths.child(directory, shardName);
                    if (!paths.exists(location)) {
                        throw new FormatException(index + ": shard " + shardName + " (holding " + e.getKey()
                                + ") does not exist: the checkpoint is incomplete");
                    }
                    shard = SafetensorsFile.open(location, paths);
                    opened.add(shard);
                    shards.put(shardName, shard);
                }
                if (!shard.contains(e.getKey())) {
                    throw new FormatException(index + ": weight_map puts " + e.getKey() + " in " + shardName
                            + " but that shard has no such tensor");
                }
                byTensor.put(e.getKey(), shard);
            }
        } catch (IOException | RuntimeException e) {
            for (SafetensorsFile f : opened) {
                f.close();
            }
            throw e;
        }
        return new Checkpoint(directory, paths, Collections.unmodifiableMap(byTensor), List.copyOf(opened));
    }

    public String directory() { return directory; }

    public HadoopPaths paths() { return paths; }

    /** All tensor names (index order for sharded checkpoints, file order otherwise). */
    public List<String> names() { return new ArrayList<>(byTensor.keySet()); }

    public boolean contains(String name) { return byTensor.containsKey(name); }

    /** The file holding a tensor. */
    public SafetensorsFile file(String name) {
        SafetensorsFile f = byTensor.get(name);
        if (f == null) {
            throw new IllegalArgumentException(directory + ": the checkpoint has no tensor named " + name);
        }
        return f;
    }

    public TensorInfo info(String name) { return file(name).info(name); }

    public float[] floats(String name) throws IOException { return file(name).floats(name); }

    public int[] ints(String name) throws IOException { return file(name).ints(name); }

    public long[] longs(String name) throws IOException { return file(name).longs(name); }

    public byte[] bytes(String name) throws IOException { return file(name).bytes(name); }

    /** Streams a tensor's raw bytes to {@code out} in chunks ({@link SafetensorsFile#copyTo}). */
    public void copyTo(String name, java.io.OutputStream out) throws IOException { file(name).copyTo(name, out); }

    /** {@code __metadata__} of the first file (HF writes the same {"format": "pt"} into every shard). */
    public Map<String, String> metadata() { return files.isEmpty() ? Map.of() : files.get(0).metadata(); }

    /** The directory's config.json (with quantization settings, when present), read once. */
    public synchronized LlamaConfig config() throws IOException {
        if (config == null) {
            config = LlamaConfig.read(directory, paths);
        }
        return config;
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (SafetensorsFile f : files) {
            try {
                f.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
