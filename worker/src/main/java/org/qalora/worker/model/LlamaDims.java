package org.qalora.worker.model;

import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.config.RopeScaling;

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

    /** The architecture numbers of a parsed config.json. */
    public static LlamaDims of(LlamaConfig c) {
        RopeScaling s = c.ropeScaling();
        RopeParams rope = s == null ? RopeParams.plain(c.ropeTheta())
                : RopeParams.llama3(c.ropeTheta(), s.factor(), s.lowFreqFactor(), s.highFreqFactor(),
                        s.originalMaxPositionEmbeddings());
        return new LlamaDims(c.vocabSize(), c.hiddenSize(), c.intermediateSize(), c.numHiddenLayers(),
                c.numAttentionHeads(), c.numKeyValueHeads(), c.headDim(), (float) c.rmsNormEps(), rope,
                c.tieWordEmbeddings());
    }
}
