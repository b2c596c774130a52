package org.qalora.quant.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.io.FormatException;

/**
 * GPTQ quantization settings as stored in {@code config.json["quantization_config"]} (HF transformers / GPTQModel
 * naming) or in AutoGPTQ's {@code quantize_config.json}.
 *
 * @param groupSize    elements per group along the input dimension; -1 means one group per column (AutoGPTQ)
 * @param dampPercent  Hessian damping as a fraction of the mean diagonal (0.01 = the paper's and AutoGPTQ's default)
 * @param format       how zero points are stored on disk, see {@link CheckpointFormat}
 */
public record GptqConfig(int bits, int groupSize, boolean sym, boolean descAct, boolean staticGroups,
                         double dampPercent, boolean trueSequential, CheckpointFormat format)
        implements java.io.Serializable {

    /** On-disk zero-point conventions. */
    public enum CheckpointFormat {
        /** v1 (AutoGPTQ, GPTQ-for-LLaMa, HF "gptq"): packed int32 qzeros store zero - 1. */
        GPTQ("gptq"),
        /** v2 (GPTQModel "gptq_v2"): packed int32 qzeros store the zero itself. */
        GPTQ_V2("gptq_v2"),
        /**
         * Ours, for merged QA-LoRA models: qzeros is F32 {@code [G, O]} holding the real-valued zero points (the merge
         * shifts them off the integers; rounding would undo the fine-tuning). Codes and scales are as in v2.
         */
        QALORA_FLOAT_ZEROS("qalora_float_zeros");

        private final String jsonName;

        CheckpointFormat(String jsonName) { this.jsonName = jsonName; }

        public String jsonName() { return jsonName; }

        public static CheckpointFormat parse(String name, String where) throws FormatException {
            for (CheckpointFormat f : values()) {
                if (f.jsonName.equals(name)) {
                    return f;
                }
            }
            throw new FormatException(where + ": checkpoint_format \"" + name
                    + "\" is not supported (use gptq, gptq_v2 or qalora_float_zeros)");
        }
    }

    public GptqConfig {
        PackedCodes.checkBits(bits);
        if (groupSize != -1 && groupSize <= 0) {
            throw new IllegalArgumentException("group size " + groupSize + " must be positive (or -1 for whole columns)");
        }
        if (!(dampPercent > 0 && dampPercent < 1)) {
            throw new IllegalArgumentException("damp_percent " + dampPercent + " must be in (0, 1); 0.01 is usual");
        }
    }

    /** The paper's setting: asymmetric, no act-order, true-sequential, damping 0.01, v2 zeros. */
    public static GptqConfig of(int bits, int groupSize) {
        return new GptqConfig(bits, groupSize, false, false, false, 0.01, true, CheckpointFormat.GPTQ_V2);
    }

    public GptqConfig withFormat(CheckpointFormat newFormat) {
        return new GptqConfig(bits, groupSize, sym, descAct, staticGroups, dampPercent, trueSequential, newFormat);
    }

    public GptqConfig withSym(boolean newSym) {
        return new GptqConfig(bits, groupSize, newSym, descAct, staticGroups, dampPercent, trueSequential, format);
    }

    public GptqConfig withStaticGroups(boolean newStaticGroups) {
        return new GptqConfig(bits, groupSize, sym, descAct, newStaticGroups, dampPercent, trueSequential, format);
    }

    /** The group size for a layer with {@code inFeatures} inputs (-1 resolves to the whole column). */
    public int groupSizeFor(int inFeatures) {
        return groupSize == -1 ? inFeatures : groupSize;
    }

    /**
     * Parses a quantization_config / quantize_config.json object. {@code where} names the file for errors.
     * Defaults follow AutoGPTQ where a field is absent, except {@code checkpoint_format}, which defaults to v1
     * because every pre-GPTQModel file is v1.
     */
    public static GptqConfig fromJson(JsonNode node, String where) throws FormatException {
        if (node == null || !node.isObject()) {
            throw new FormatException(where + ": quantization config must be a JSON object");
        }
        JsonNode method = node.get("quant_method");
        if (method != null && !method.isNull() && !"gptq".equals(method.asText())) {
            throw new FormatException(where + ": quant_method is \"" + method.asText()
                    + "\", only gptq checkpoints are supported (re-quantize with qalora quantize)");
        }
        JsonNode bitsNode = node.get("bits");
        if (bitsNode == null || !bitsNode.isIntegralNumber()) {
            throw new FormatException(where + ": quantization config lacks an integer \"bits\" field");
        }
        int bits = bitsNode.asInt();
        if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
            throw new FormatException(where + ": bits " + bits + " is not supported (2, 3, 4 or 8)");
        }
        int groupSize = node.path("group_size").asInt(-1);
        if (groupSize == 0 || groupSize < -1) {
            throw new FormatException(where + ": group_size " + groupSize + " must be positive or -1");
        }
        JsonNode meta = node.path("meta");
        double damp = node.has("damp_percent") ? node.get("damp_percent").asDouble()
                : meta.path("damp_percent").asDouble(0.01);
        if (!(damp > 0 && damp < 1)) {
            throw new FormatException(where + ": damp_percent " + damp + " must be in (0, 1)");
        }
        boolean staticGroups = node.has("static_groups") ? node.get("static_groups").asBoolean()
                : meta.path("static_groups").asBoolean(false);
        boolean trueSequential = node.has("true_sequential") ? node.get("true_sequential").asBoolean()
                : meta.path("true_sequential").asBoolean(true);
        String formatName = node.hasNonNull("checkpoint_format") ? node.get("checkpoint_format").asText()
                : node.hasNonNull("format") ? node.get("format").asText() : "gptq";
        return new GptqConfig(bits, groupSize, node.path("sym").asBoolean(true), node.path("desc_act").asBoolean(false),
                staticGroups, damp, trueSequential, CheckpointFormat.parse(formatName, where));
    }

    /** The {@code quantization_config} object for config.json (HF transformers field names). */
    public ObjectNode toQuantizationConfig(ObjectMapper mapper) {
        ObjectNode n = toQuantizeConfig(mapper);
        n.put("quant_method", "gptq");
        // transformers v5 reads "format"; older readers and GPTQModel read "checkpoint_format": write both.
        n.put("format", format.jsonName());
        return n;
    }

    /** The {@code quantize_config.json} object (AutoGPTQ field names). */
    public ObjectNode toQuantizeConfig(ObjectMapper mapper) {
        ObjectNode n = mapper.createObjectNode();
        n.put("bits", bits);
        n.put("group_size", groupSize);
        n.put("desc_act", descAct);
        n.put("sym", sym);
        n.put("static_groups", staticGroups);
        n.put("true_sequential", trueSequential);
        n.put("damp_percent", dampPercent);
        n.put("checkpoint_format", format.jsonName());
        return n;
    }
}
