package org.qalora.worker.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.SafetensorsStreamWriter;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.model.Projection;

/**
 * A QA-LoRA adapter in PEFT's directory layout: {@code adapter_config.json} ({@code peft_type LORA},
 * {@code use_qalora}, {@code qalora_group_size}, our {@code qalora_pooling}) and {@code adapter_model.safetensors}
 * (float32 {@code lora_A [r, in/g]}, {@code lora_B [out, r]} under PEFT key names). A plain LoRA adapter is the same
 * with {@code use_qalora: false}, no qalora fields, and {@code lora_A [r, in]}.
 *
 * @param weights by PEFT key, in file order
 */
public record PeftAdapter(QaloraConfig config, Map<String, float[]> weights) {
    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Reads an adapter directory through this machine's default Hadoop configuration (CLI use). */
    public static PeftAdapter read(String dir) {
        return read(dir, HadoopPaths.defaults());
    }

    /** Reads an adapter directory from any Hadoop path, through {@code paths} (e.g. the Spark job's configuration). */
    public static PeftAdapter read(String dir, HadoopPaths paths) {
        String configFile = HadoopPaths.child(dir, CONFIG_FILE);
        try {
            if (!paths.exists(configFile)) {
                throw new IllegalArgumentException(configFile + " does not exist: --adapter must be a PEFT adapter "
                        + "directory holding adapter_config.json and adapter_model.safetensors");
            }
            QaloraConfig cfg = parseConfig(new String(paths.readAllBytes(configFile), StandardCharsets.UTF_8), configFile);
            Map<String, float[]> weights = new LinkedHashMap<>();
            String weightsFile = HadoopPaths.child(dir, WEIGHTS_FILE);
            try (SafetensorsFile f = SafetensorsFile.open(weightsFile, paths)) {
                for (String name : f.names()) {
                    PeftKeys.Parsed key = PeftKeys.parse(name);
                    if (!cfg.targets(key.projection())) {
                        throw new IllegalArgumentException(weightsFile + ": tensor " + name + " adapts "
                                + key.projection().shortName() + ", which is not in target_modules "
                                + cfg.orderedTargets());
                    }
                    weights.put(name, f.floats(name));
                }
            }
            return new PeftAdapter(cfg, weights);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read adapter " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Reads only an adapter directory's adapter_config.json (no weights): what a merge plan needs. */
    public static QaloraConfig readConfig(String dir, HadoopPaths paths) {
        String configFile = HadoopPaths.child(dir, CONFIG_FILE);
        try {
            if (!paths.exists(configFile)) {
                throw new IllegalArgumentException(configFile + " does not exist: --adapter must be a PEFT adapter "
                        + "directory holding adapter_config.json and adapter_model.safetensors");
            }
            return parseConfig(new String(paths.readAllBytes(configFile), StandardCharsets.UTF_8), configFile);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read adapter " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Parses adapter_config.json; {@code where} names the file in errors. */
    public static QaloraConfig parseConfig(String text, String where) throws IOException {
        JsonNode root = JSON.readTree(text);
        String peftType = root.path("peft_type").asText("LORA");
        if (!peftType.equals("LORA")) {
            throw new IllegalArgumentException(where + ": peft_type " + peftType + " is not LORA");
        }
        // use_qalora absent or false: a plain LoRA adapter (A [r, in]), which applies to and merges into float
        // weights only; QaloraAdapter.checkFits refuses it on a quantized model.
        boolean qalora = root.path("use_qalora").asBoolean(false);
        int r = requireInt(root, "r", where);
        double alpha = root.has("lora_alpha") ? root.get("lora_alpha").asDouble() : r;
        int g = qalora ? requireInt(root, "qalora_group_size", where) : 1;
        JsonNode pooling = root.get("qalora_pooling");
        Pooling p = qalora ? Pooling.fromConfig(pooling == null || pooling.isNull() ? null : pooling.asText(), where)
                : Pooling.NONE;
        double dropout = root.path("lora_dropout").asDouble(0.0);
        EnumSet<Projection> targets = EnumSet.noneOf(Projection.class);
        JsonNode t = root.get("target_modules");
        if (t == null || !(t.isArray() || t.isTextual())) {
            throw new IllegalArgumentException(where + ": target_modules must list projections, e.g. [\"q_proj\", \"v_proj\"]");
        }
        for (JsonNode name : t.isArray() ? t : JSON.createArrayNode().add(t)) {
            try {
                targets.add(Projection.byName(name.asText()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": target_modules: " + e.getMessage(), e);
            }
        }
        if (!root.path("bias").asText("none").equals("none")) {
            throw new IllegalArgumentException(where + ": bias \"" + root.get("bias").asText()
                    + "\" is not supported: LLaMA has no biases, use \"none\"");
        }
        return new QaloraConfig(r, alpha, g, p, dropout, targets);
    }

    private static int requireInt(JsonNode root, String field, String where) {
        JsonNode n = root.get(field);
        if (n == null || !n.canConvertToInt()) {
            throw new IllegalArgumentException(where + ": field " + field + " is missing or not an integer");
        }
        return n.asInt();
    }

    /** The adapter_config.json text (PEFT fields plus {@code qalora_pooling}). */
    public static String configJson(QaloraConfig cfg, String baseModel) {
        ObjectNode root = JSON.createObjectNode();
        root.put("peft_type", "LORA");
        root.put("task_type", "CAUSAL_LM");
        if (baseModel != null) {
            root.put("base_model_name_or_path", baseModel);
        }
        root.put("r", cfg.rank());
        if (cfg.alpha() == Math.rint(cfg.alpha())) {
            root.put("lora_alpha", (long) cfg.alpha()); // PEFT writes an int
        } else {
            root.put("lora_alpha", cfg.alpha());
        }
        root.put("lora_dropout", cfg.dropout());
        ArrayNode targets = root.putArray("target_modules");
        for (Projection p : cfg.orderedTargets()) {
            targets.add(p.shortName());
        }
        root.put("bias", "none");
        root.put("use_qalora", !cfg.plainLora());
        if (!cfg.plainLora()) {
            root.put("qalora_group_size", cfg.groupSize());
            root.put("qalora_pooling", cfg.pooling().configName());
        }
        try {
            return JSON.writeValueAsString(root) + "\n";
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Writes the adapter directory atomically (a temporary sibling renamed into place; {@code dir} must not exist).
     *
     * @param shapes  {@code [rows, cols]} of each tensor by key
     * @param baseModel recorded as {@code base_model_name_or_path}; may be null
     */
    public static void write(String dir, QaloraConfig cfg, Map<String, float[]> weights, Map<String, long[]> shapes,
                             String baseModel) {
        write(dir, cfg, weights, shapes, baseModel, HadoopPaths.defaults());
    }

    /** As {@link #write(String, QaloraConfig, Map, Map, String)}, through {@code paths} (e.g. the job's configuration). */
    public static void write(String dir, QaloraConfig cfg, Map<String, float[]> weights, Map<String, long[]> shapes,
                             String baseModel, HadoopPaths paths) {
        Map<String, long[]> written = new LinkedHashMap<>();
        for (String k : weights.keySet()) {
            written.put(k, shapes.get(k));
        }
        write(dir, cfg, written, (tensor, out) -> {
            float[] w = weights.get(tensor.name());
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(Math.multiplyExact(w.length, 4))
                    .order(java.nio.ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(w);
            out.write(b.array());
        }, baseModel, paths);
    }

    /**
     * As above, with each tensor's F32 little-endian bytes streamed by {@code data}, one tensor at a time and in the
     * file's order, so the writer never holds the adapter (the driver publishes a trained adapter this way, from the
     * committed state's files). {@code shapes}: the tensors to write, by PEFT key.
     */
    public static void write(String dir, QaloraConfig cfg, Map<String, long[]> shapes,
                             SafetensorsStreamWriter.TensorData data, String baseModel, HadoopPaths paths) {
        List<TensorInfo> tensors = new ArrayList<>();
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            PeftKeys.parse(e.getKey());
            if (e.getValue() == null) {
                throw new IllegalArgumentException("adapter tensor " + e.getKey() + " has no shape");
            }
            tensors.add(new TensorInfo(e.getKey(), DType.F32, e.getValue()));
        }
        byte[] config = configJson(cfg, baseModel).getBytes(StandardCharsets.UTF_8);
        try {
            paths.writeDirectoryAtomically(dir, tmp -> {
                paths.writeAtomically(HadoopPaths.child(tmp, WEIGHTS_FILE),
                        out -> SafetensorsStreamWriter.write(out, tensors, Map.of(), data));
                paths.writeAtomically(HadoopPaths.child(tmp, CONFIG_FILE), out -> out.write(config));
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write adapter " + dir + ": " + e.getMessage(), e);
        }
    }
}
