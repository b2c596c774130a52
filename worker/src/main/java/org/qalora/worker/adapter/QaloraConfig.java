package org.qalora.worker.adapter;

import java.util.EnumSet;
import java.util.Set;
import org.qalora.worker.model.Projection;

/**
 * The adapter hyper-parameters (PEFT's adapter_config.json with {@code use_qalora}).
 *
 * @param rank        LoRA rank r
 * @param alpha       lora_alpha; the adapter output is scaled by {@code alpha / r}
 * @param groupSize   pooling window g; must equal the quantization group size so the adapter can be merged
 * @param pooling     pooling convention
 * @param dropout     dropout probability on the pooled input (training only)
 * @param targets     projections that carry an adapter
 */
public record QaloraConfig(int rank, double alpha, int groupSize, Pooling pooling, double dropout,
                           Set<Projection> targets) implements java.io.Serializable {
    public QaloraConfig {
        if (rank <= 0) {
            throw new IllegalArgumentException("adapter rank r must be positive, got " + rank);
        }
        if (groupSize <= 0) {
            throw new IllegalArgumentException("qalora_group_size must be positive, got " + groupSize);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new IllegalArgumentException("lora_dropout must be in [0, 1), got " + dropout);
        }
        if (targets.isEmpty()) {
            throw new IllegalArgumentException("target_modules is empty: name at least one of q_proj ... down_proj");
        }
        targets = Set.copyOf(EnumSet.copyOf(targets));
    }

    /** All seven projections (the paper's setup). */
    public static QaloraConfig allProjections(int rank, double alpha, int groupSize, Pooling pooling, double dropout) {
        return new QaloraConfig(rank, alpha, groupSize, pooling, dropout, EnumSet.allOf(Projection.class));
    }

    /** PEFT's scaling {@code s = alpha / r}. */
    public double scaling() { return alpha / rank; }

    public boolean targets(Projection p) { return targets.contains(p); }

    /** Targets in the fixed {@link Projection} order. */
    public EnumSet<Projection> orderedTargets() { return EnumSet.copyOf(targets); }
}
