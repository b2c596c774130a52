package org.qalora.worker.model;

/**
 * The architecture numbers the forward pass needs, read from an HF {@code config.json}.
 *
 * @param headDim {@code head_dim}, or hidden / heads when the config has none
 */
public record LlamaDims(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads, int headDim,
                        float rmsEps, RopeParams rope, boolean tiedEmbeddings) {
    public LlamaDims {
        if (vocab <= 0 || hidden <= 0 || intermediate <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0) {
            throw new IllegalArgumentException("model dimensions must be positive: " + this);
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("num_attention_heads " + heads
                    + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("head_dim " + headDim + " must be even for rotary embeddings");
        }
    }
}
