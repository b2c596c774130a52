package org.qalora.worker.model;

import java.util.Locale;

/** The seven linear projections of a LLaMA decoder layer, in the fixed order used for keys and iteration. */
public enum Projection {
    Q("self_attn", "q_proj"),
    K("self_attn", "k_proj"),
    V("self_attn", "v_proj"),
    O("self_attn", "o_proj"),
    GATE("mlp", "gate_proj"),
    UP("mlp", "up_proj"),
    DOWN("mlp", "down_proj");

    private final String block;
    private final String shortName;

    Projection(String block, String shortName) {
        this.block = block;
        this.shortName = shortName;
    }

    /** {@code q_proj} etc., as in PEFT's {@code target_modules}. */
    public String shortName() { return shortName; }

    /** {@code self_attn.q_proj} etc. */
    public String module() { return block + "." + shortName; }

    /** The HF module path of this projection in layer {@code layer}: {@code model.layers.3.self_attn.q_proj}. */
    public String prefix(int layer) { return "model.layers." + layer + "." + module(); }

    public int inFeatures(LlamaDims dims) {
        return switch (this) {
            case Q, K, V, GATE, UP -> dims.hidden();
            case O -> dims.heads() * dims.headDim();
            case DOWN -> dims.intermediate();
        };
    }

    public int outFeatures(LlamaDims dims) {
        return switch (this) {
            case Q -> dims.heads() * dims.headDim();
            case K, V -> dims.kvHeads() * dims.headDim();
            case O, DOWN -> dims.hidden();
            case GATE, UP -> dims.intermediate();
        };
    }

    /** Parses {@code q_proj} (or {@code self_attn.q_proj}); the error lists the names that exist. */
    public static Projection byName(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        for (Projection p : values()) {
            if (p.shortName.equals(n) || p.module().equals(n)) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown projection '" + name
                + "': a LLaMA layer has q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    }
}
