package org.qalora.worker.adapter;

/**
 * How the adapter pools each group of {@code g} inputs, recorded in adapter_config.json as {@code qalora_pooling}.
 * All are {@code factor * sum over the group}; they differ only by the constant factor, which also sets the
 * merge factor {@code c = scaling * factor} (see qalora-spec.md section 1.5). {@link #NONE} is plain LoRA: groups
 * of one input, so the adapter sees the input itself.
 */
public enum Pooling {
    /** Official qa-lora code ({@code AvgPool1d(g)}): factor {@code 1/g}. */
    MEAN("mean"),
    /** Paper Algorithm 1 / ms-swift: the plain group sum, factor 1. */
    SUM("sum"),
    /** PEFT {@code use_qalora}: the mean multiplied by {@code in/g}, factor {@code (in/g)/g}. */
    PEFT("peft"),
    /**
     * Plain LoRA ({@code train --method lora}): no pooling, groups of one, factor 1; {@code A [r, in]}, and the
     * adapter folds into float weights, {@code W' = W + s B A}. Written as {@code use_qalora: false}.
     */
    NONE("none");

    private final String configName;

    Pooling(String configName) {
        this.configName = configName;
    }

    /** The value written as {@code qalora_pooling}. */
    public String configName() { return configName; }

    /** The factor applied to each group sum for a projection with {@code in} inputs and groups of {@code g}. */
    public float poolFactor(int in, int g) {
        return switch (this) {
            case MEAN -> 1f / g;
            case SUM, NONE -> 1f;
            case PEFT -> (float) ((double) (in / g) / g);
        };
    }

    /** Merge factor {@code c}: the adapter equals the per-group weight delta {@code c * (B A)[o, i / g]}. */
    public double mergeFactor(double scaling, int in, int g) {
        return switch (this) {
            case MEAN -> scaling / g;
            case SUM, NONE -> scaling;
            case PEFT -> scaling * (in / g) / g;
        };
    }

    /**
     * Parses {@code qalora_pooling} (or {@code --pooling}). A missing field (null) means the file came from PEFT,
     * whose convention is {@link #PEFT}. {@code none} is not a QA-LoRA pooling: plain LoRA is asked for with
     * {@code --method lora}, or read from {@code use_qalora: false}.
     */
    public static Pooling fromConfig(String value, String file) {
        if (value == null) {
            return PEFT;
        }
        for (Pooling p : values()) {
            if (p != NONE && p.configName.equalsIgnoreCase(value)) {
                return p;
            }
        }
        throw new IllegalArgumentException(file + ": qalora_pooling '" + value
                + "' is unknown: use \"mean\" (official qa-lora), \"sum\" (paper) or \"peft\"");
    }
}
