package org.qalora.worker.adapter;

import java.util.EnumSet;
import java.util.Set;
import org.qalora.worker.model.Projection;

/**
 * The adapter hyper-parameters (PEFT's adapter_config.json with {@code use_qalora}); plain LoRA is the special
 * case {@link Pooling#NONE} with groups of one ({@link #lora}), whose {@code A} is {@code [r, in]}.
 *
 * @param rank        LoRA rank r
 * @param alpha       lora_alpha; the adapter output is scaled by {@code alpha / r}
 * @param groupSize   pooling window g; must equal the quantization group size so the adapter can be merged (1 for
 *                    plain LoRA)
 * @param pooling     pooling convention ({@link Pooling#NONE}: plain LoRA)
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
        if (pooling == Pooling.NONE && groupSize != 1) {
            throw new IllegalArgumentException("plain LoRA (no pooling) sees every input on its own: its group size "
                    + "is 1, got " + groupSize);
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

    /** Plain LoRA on all seven projections: {@code y = W x + s B A drop(x)}, {@code A [r, in]}, {@code B [out, r]}. */
    public static QaloraConfig lora(int rank, double alpha, double dropout) {
        return allProjections(rank, alpha, 1, Pooling.NONE, dropout);
    }

    /** True for plain LoRA (no pooling; merges into float weights, not into zero points). */
    public boolean plainLora() { return pooling == Pooling.NONE; }

    /** PEFT's scaling {@code s = alpha / r}. */
    public double scaling() { return alpha / rank; }

    public boolean targets(Projection p) { return targets.contains(p); }

    /** Targets in the fixed {@link Projection} order. */
    public EnumSet<Projection> orderedTargets() { return EnumSet.copyOf(targets); }
}
