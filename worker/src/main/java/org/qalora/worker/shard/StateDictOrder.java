package org.qalora.worker.shard;

import java.util.Comparator;

/**
 * HF's state-dict order for LLaMA tensor names, which decides how tensors fill shards: the embedding, then layer
 * 0, 1, ... (each layer's tensors by name), then the rest of {@code model.} (the final norm), then everything else
 * ({@code lm_head}). Shards so hold whole consecutive layers where they fit, and a shard task's layers are
 * contiguous.
 */
public final class StateDictOrder {
    public static final Comparator<String> NAMES = Comparator.<String>comparingInt(StateDictOrder::group)
            .thenComparingInt(StateDictOrder::layerOf).thenComparing(Comparator.naturalOrder());

    private StateDictOrder() {}

    private static int group(String name) {
        if (name.startsWith("model.embed_tokens.")) {
            return 0;
        }
        if (layerOf(name) >= 0) {
            return 1;
        }
        return name.startsWith("model.") ? 2 : 3;
    }

    /** The layer index of {@code model.layers.N.*}, else -1. */
    public static int layerOf(String name) {
        if (!name.startsWith("model.layers.")) {
            return -1;
        }
        int start = "model.layers.".length(), end = name.indexOf('.', start);
        try {
            return end < 0 ? -1 : Integer.parseInt(name.substring(start, end));
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
