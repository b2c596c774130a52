package org.qalora.worker.export;

import org.qalora.quant.config.LlamaConfig;
import org.qalora.worker.model.Projection;

/**
 * The row order llama.cpp's rotary embedding needs for q_proj and k_proj.
 *
 * <p>HF LLaMA rotates each head's vector as two halves: dimension i pairs with i + headDim/2 ("rotate_half").
 * llama.cpp's LLaMA graph uses ggml's normal RoPE, which pairs adjacent dimensions 2i and 2i+1. Both use frequency
 * theta^(-2i/headDim) for pair i, so moving output row {@code p*headDim/2 + i} of each head to {@code 2i + p}
 * makes llama.cpp compute exactly HF's attention scores (q.k is a sum over the same pairs in another order).
 * convert_hf_to_gguf.py's {@code LlamaModel.permute} does the same with reshape/swapaxes. Only output rows move,
 * so each row's quantization groups (along the input) stay whole: a row's codes, d and m move together.
 */
public final class RopeRowOrder {
    private RopeRowOrder() {}

    /** The order for projection {@code p} of a model with config {@code c}: q_proj and k_proj move, others null. */
    public static int[] of(Projection p, LlamaConfig c) {
        return switch (p) {
            case Q -> of(c.numAttentionHeads(), c.headDim());
            case K -> of(c.numKeyValueHeads(), c.headDim());
            default -> null;
        };
    }

    /** {@code order[r]} = the HF row that becomes GGUF row r, for {@code heads} heads of {@code headDim} rows. */
    public static int[] of(int heads, int headDim) {
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("head_dim " + headDim + " must be even for rotary embeddings");
        }
        int half = headDim / 2;
        int[] order = new int[heads * headDim];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < half; i++) {
                for (int p = 0; p < 2; p++) {
                    order[h * headDim + 2 * i + p] = h * headDim + p * half + i;
                }
            }
        }
        return order;
    }
}
