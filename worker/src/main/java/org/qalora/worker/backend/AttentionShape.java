package org.qalora.worker.backend;

/**
 * The geometry of one causal self-attention call: {@code batch} right-padded sequences of {@code seqLen} tokens,
 * {@code heads} query heads sharing {@code kvHeads} key/value heads (GQA: query head {@code h} reads kv head
 * {@code h / (heads / kvHeads)}), each of {@code headDim}.
 */
public record AttentionShape(int batch, int seqLen, int heads, int kvHeads, int headDim) {
    public AttentionShape {
        if (batch <= 0 || seqLen <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("bad attention shape " + batch + "x" + seqLen + " heads " + heads
                    + " kv " + kvHeads + " dim " + headDim + ": heads must be a multiple of kv heads");
        }
    }

    public int tokens() { return batch * seqLen; }

    public int queryWidth() { return heads * headDim; }

    public int kvWidth() { return kvHeads * headDim; }
}
