package org.qalora.worker.adapter;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.qalora.worker.model.Projection;

/** PEFT state-dict key names of adapter tensors: {@code base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight}. */
public final class PeftKeys {
    private static final Pattern KEY = Pattern.compile(
            "base_model\\.model\\.model\\.layers\\.(\\d+)\\.(self_attn|mlp)\\.(\\w+_proj)\\.lora_([AB])\\.weight");

    private PeftKeys() {}

    /** {@code lora_A} key, tensor {@code [r, in/g]}. */
    public static String a(int layer, Projection p) {
        return "base_model.model." + p.prefix(layer) + ".lora_A.weight";
    }

    /** {@code lora_B} key, tensor {@code [out, r]}. */
    public static String b(int layer, Projection p) {
        return "base_model.model." + p.prefix(layer) + ".lora_B.weight";
    }

    /** A parsed key. */
    public record Parsed(int layer, Projection projection, boolean isA) {}

    /** Parses a key; the error names the key and shows the expected form. */
    public static Parsed parse(String key) {
        Matcher m = KEY.matcher(key);
        if (!m.matches()) {
            throw new IllegalArgumentException("adapter tensor '" + key + "' is not a PEFT LoRA key of the form "
                    + "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight");
        }
        Projection p = Projection.byName(m.group(3));
        if (!p.module().equals(m.group(2) + "." + m.group(3))) {
            throw new IllegalArgumentException("adapter tensor '" + key + "': " + m.group(3) + " belongs to "
                    + p.module());
        }
        return new Parsed(Integer.parseInt(m.group(1)), p, m.group(4).equals("A"));
    }
}
