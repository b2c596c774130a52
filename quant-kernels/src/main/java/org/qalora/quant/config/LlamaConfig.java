package org.qalora.quant.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;

/**
 * A LLaMA model's HF {@code config.json}: what the model code needs, validated, plus the GPTQ settings when the
 * checkpoint is quantized.
 *
 * <p>Both transformers generations are read: v4 writes {@code rope_theta} and {@code rope_scaling}; v5 folds them
 * into {@code rope_parameters} ({@code rope_theta}, {@code rope_type}, llama3 factors). The quantization settings
 * come from {@code quantization_config} in config.json, or else from AutoGPTQ's {@code quantize_config.json}
 * beside it.
 *
 * <p>The parsed JSON is kept, so {@link #toJson()} writes back every field we do not model (architectures,
 * transformers_version, ...) unchanged.
 *
 * @param headDim          {@code head_dim}, default {@code hiddenSize / numAttentionHeads}
 * @param ropeScaling      llama3 scaling, or null for plain RoPE
 * @param eosTokenIds      {@code eos_token_id} (an int, or a list in LLaMA 3 configs)
 * @param padTokenId       null when absent or null
 * @param quantization     null for an unquantized checkpoint
 */
public record LlamaConfig(int vocabSize, int hiddenSize, int intermediateSize, int numHiddenLayers,
                          int numAttentionHeads, int numKeyValueHeads, int headDim, double rmsNormEps,
                          double ropeTheta, RopeScaling ropeScaling, boolean tieWordEmbeddings,
                          int maxPositionEmbeddings, Integer bosTokenId, List<Integer> eosTokenIds, Integer padTokenId,
                          GptqConfig quantization, ObjectNode json) {

    public static final String CONFIG_FILE = "config.json";
    public static final String QUANTIZE_CONFIG_FILE = "quantize_config.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public LlamaConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
        json = json.deepCopy();
    }

    /** The whole config.json as parsed (a copy: this record stays immutable). */
    @Override
    public ObjectNode json() {
        return json.deepCopy();
    }

    /** Reads {@code dir/config.json} (and {@code dir/quantize_config.json} when config.json has no quantization_config). */
    public static LlamaConfig read(String dir, HadoopPaths paths) throws IOException {
        String configLocation = HadoopPaths.child(dir, CONFIG_FILE);
        if (!paths.exists(configLocation)) {
            throw new FormatException(configLocation + ": no such file: a model directory needs the HF config.json");
        }
        String text = new String(paths.readAllBytes(configLocation), StandardCharsets.UTF_8);
        GptqConfig sidecar = null;
        String sidecarLocation = HadoopPaths.child(dir, QUANTIZE_CONFIG_FILE);
        if (paths.exists(sidecarLocation)) {
            sidecar = GptqConfig.fromJson(parseObject(new String(paths.readAllBytes(sidecarLocation), StandardCharsets.UTF_8),
                    sidecarLocation), sidecarLocation);
        }
        return parse(text, configLocation, sidecar);
    }

    public static LlamaConfig read(String dir) throws IOException {
        return read(dir, HadoopPaths.defaults());
    }

    private static ObjectNode parseObject(String text, String where) throws FormatException {
        try {
            JsonNode node = JSON.readTree(text);
            if (node == null || !node.isObject()) {
                throw new FormatException(where + ": not a JSON object");
            }
            return (ObjectNode) node;
        } catch (JsonProcessingException e) {
            throw new FormatException(where + ": invalid JSON (" + e.getOriginalMessage() + ")", e);
        }
    }

    /**
     * Parses config.json text. {@code where} names the file in errors; {@code quantizeConfig} is the
     * quantize_config.json beside it (null if none), used only when config.json has no quantization_config.
     */
    public static LlamaConfig parse(String text, String where, GptqConfig quantizeConfig) throws FormatException {
        ObjectNode n = parseObject(text, where);
        String modelType = optionalString(n, "model_type", "llama", where);
        if (!modelType.equals("llama")) {
            throw new FormatException(where + ": model_type is \"" + modelType + "\", only llama models are supported");
        }
        int hidden = requiredInt(n, "hidden_size", where);
        int heads = requiredInt(n, "num_attention_heads", where);
        int kvHeads = n.hasNonNull("num_key_value_heads") ? positive(n, "num_key_value_heads", where) : heads;
        if (heads % kvHeads != 0) {
            throw new FormatException(where + ": num_attention_heads " + heads + " is not a multiple of num_key_value_heads "
                    + kvHeads + " (grouped-query attention needs whole groups)");
        }
        int headDim;
        if (n.hasNonNull("head_dim")) {
            headDim = positive(n, "head_dim", where);
        } else {
            if (hidden % heads != 0) {
                throw new FormatException(where + ": hidden_size " + hidden + " is not divisible by num_attention_heads "
                        + heads + " and there is no head_dim field");
            }
            headDim = hidden / heads;
        }
        if (headDim % 2 != 0) {
            throw new FormatException(where + ": head_dim " + headDim + " must be even for rotary embeddings");
        }
        String act = optionalString(n, "hidden_act", "silu", where);
        if (!act.equals("silu")) {
            throw new FormatException(where + ": hidden_act is \"" + act + "\", LLaMA uses silu");
        }
        for (String biasField : List.of("attention_bias", "mlp_bias")) {
            if (optionalBoolean(n, biasField, false, where)) {
                throw new FormatException(where + ": " + biasField + " is true, but only bias-free LLaMA projections are"
                        + " supported; set it to false (the checkpoint must not have bias tensors)");
            }
        }
        double eps = requiredDouble(n, "rms_norm_eps", where);

        // RoPE: v5 rope_parameters wins over v4 rope_theta/rope_scaling.
        double theta;
        RopeScaling scaling;
        JsonNode ropeParams = n.get("rope_parameters");
        if (ropeParams != null && ropeParams.isObject()) {
            theta = ropeParams.hasNonNull("rope_theta") ? requiredDouble(ropeParams, "rope_theta", where + " rope_parameters")
                    : n.hasNonNull("rope_theta") ? requiredDouble(n, "rope_theta", where) : 10000.0;
            scaling = ropeScaling(ropeParams, where + " rope_parameters");
        } else if (ropeParams != null && !ropeParams.isNull()) {
            throw new FormatException(where + ": field \"rope_parameters\" must be an object, got " + ropeParams);
        } else {
            theta = n.hasNonNull("rope_theta") ? requiredDouble(n, "rope_theta", where) : 10000.0;
            JsonNode rs = n.get("rope_scaling");
            if (rs != null && !rs.isNull() && !rs.isObject()) {
                throw new FormatException(where + ": field \"rope_scaling\" must be an object or null, got " + rs);
            }
            scaling = rs == null || rs.isNull() ? null : ropeScaling(rs, where + " rope_scaling");
        }
        if (!(theta > 0)) {
            throw new FormatException(where + ": rope_theta " + theta + " must be positive");
        }

        List<Integer> eos = new ArrayList<>();
        JsonNode eosNode = n.get("eos_token_id");
        if (eosNode != null && eosNode.isArray()) {
            for (JsonNode e : eosNode) {
                eos.add(tokenId(e, "eos_token_id", where));
            }
        } else if (eosNode != null && !eosNode.isNull()) {
            eos.add(tokenId(eosNode, "eos_token_id", where));
        }

        GptqConfig quant = null;
        if (n.hasNonNull("quantization_config")) {
            quant = GptqConfig.fromJson(n.get("quantization_config"), where + " quantization_config");
        } else if (quantizeConfig != null) {
            quant = quantizeConfig;
        }
        return new LlamaConfig(requiredInt(n, "vocab_size", where), hidden, requiredInt(n, "intermediate_size", where),
                requiredInt(n, "num_hidden_layers", where), heads, kvHeads, headDim, eps, theta, scaling,
                optionalBoolean(n, "tie_word_embeddings", false, where),
                n.hasNonNull("max_position_embeddings") ? requiredInt(n, "max_position_embeddings", where) : 2048,
                n.hasNonNull("bos_token_id") ? tokenId(n.get("bos_token_id"), "bos_token_id", where) : null, eos,
                n.hasNonNull("pad_token_id") ? tokenId(n.get("pad_token_id"), "pad_token_id", where) : null, quant, n);
    }

    private static RopeScaling ropeScaling(JsonNode node, String where) throws FormatException {
        String type = node.hasNonNull("rope_type") ? node.get("rope_type").asText() : node.path("type").asText("default");
        if (type.equals("default")) {
            return null;
        }
        if (!type.equals("llama3")) {
            throw new FormatException(where + ": rope_type \"" + type + "\" is not supported (default or llama3)");
        }
        try {
            return new RopeScaling(requiredDouble(node, "factor", where), requiredDouble(node, "low_freq_factor", where),
                    requiredDouble(node, "high_freq_factor", where),
                    requiredInt(node, "original_max_position_embeddings", where));
        } catch (IllegalArgumentException e) {
            throw new FormatException(where + ": " + e.getMessage());
        }
    }

    private static int requiredInt(JsonNode n, String field, String where) throws FormatException {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            throw new FormatException(where + ": required field \"" + field + "\" is missing");
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() <= 0) {
            throw new FormatException(where + ": field \"" + field + "\" must be a positive integer, got " + v);
        }
        return v.asInt();
    }

    /** A token id: a non-negative integer. */
    private static int tokenId(JsonNode v, String field, String where) throws FormatException {
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0) {
            throw new FormatException(where + ": field \"" + field + "\" must be a non-negative integer token id"
                    + (field.equals("eos_token_id") ? " or a list of them" : "") + ", got " + v);
        }
        return v.asInt();
    }

    private static boolean optionalBoolean(JsonNode n, String field, boolean absent, String where) throws FormatException {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            return absent;
        }
        if (!v.isBoolean()) {
            throw new FormatException(where + ": field \"" + field + "\" must be true or false, got " + v);
        }
        return v.booleanValue();
    }

    private static String optionalString(JsonNode n, String field, String absent, String where) throws FormatException {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            return absent;
        }
        if (!v.isTextual()) {
            throw new FormatException(where + ": field \"" + field + "\" must be a string, got " + v);
        }
        return v.textValue();
    }

    private static int positive(JsonNode n, String field, String where) throws FormatException {
        return requiredInt(n, field, where);
    }

    private static double requiredDouble(JsonNode n, String field, String where) throws FormatException {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            throw new FormatException(where + ": required field \"" + field + "\" is missing");
        }
        if (!v.isNumber() || !(v.asDouble() > 0)) {
            throw new FormatException(where + ": field \"" + field + "\" must be a positive number, got " + v);
        }
        return v.asDouble();
    }

    /** Query heads per key/value head (1 without GQA). */
    public int groupsPerKvHead() { return numAttentionHeads / numKeyValueHeads; }

    public boolean isQuantized() { return quantization != null; }

    /** A copy whose config.json carries {@code q} as quantization_config (null removes it). */
    public LlamaConfig withQuantization(GptqConfig q) {
        ObjectNode copy = json.deepCopy();
        if (q == null) {
            copy.remove("quantization_config");
        } else {
            copy.set("quantization_config", q.toQuantizationConfig(JSON));
        }
        return new LlamaConfig(vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads,
                numKeyValueHeads, headDim, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings, maxPositionEmbeddings,
                bosTokenId, eosTokenIds, padTokenId, q, copy);
    }

    /** The config.json text: the original fields, with quantization_config as currently set. */
    public String toJson() {
        try {
            return JSON.writeValueAsString(json) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes {@code dir/config.json} and, when quantized, {@code dir/quantize_config.json}, each atomically. */
    public void write(String dir, HadoopPaths paths) throws IOException {
        byte[] config = toJson().getBytes(StandardCharsets.UTF_8);
        paths.writeAtomically(HadoopPaths.child(dir, CONFIG_FILE), out -> out.write(config));
        if (quantization != null) {
            byte[] sidecar = (JSON.writeValueAsString(quantization.toQuantizeConfig(JSON)) + "\n").getBytes(StandardCharsets.UTF_8);
            paths.writeAtomically(HadoopPaths.child(dir, QUANTIZE_CONFIG_FILE), out -> out.write(sidecar));
        }
    }
}
