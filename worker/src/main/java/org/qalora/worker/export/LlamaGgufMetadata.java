package org.qalora.worker.export;

import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gguf.GgufMetadata;

/**
 * The {@code general.*} and {@code llama.*} keys of a GGUF file, from config.json. Key names and value types are
 * those of gguf-py's {@code Keys} and what llama.cpp's loader reads for {@code LLM_ARCH_LLAMA} (integers UINT32,
 * reals FLOAT32), as convert_hf_to_gguf.py writes them for a LlamaForCausalLM.
 */
final class LlamaGgufMetadata {
    /** llama_ftype values: the file's dominant weight type. */
    static final int FILE_TYPE_MOSTLY_F16 = 1, FILE_TYPE_MOSTLY_Q4_1 = 3;
    /** GGML_QNT_VERSION: the quantized block layouts of current ggml. */
    static final int QUANTIZATION_VERSION = 2;

    private LlamaGgufMetadata() {}

    static GgufMetadata of(LlamaConfig c, String name, int fileType) {
        GgufMetadata m = new GgufMetadata();
        m.putString("general.architecture", "llama");
        m.putString("general.name", name);
        m.putUint32("general.file_type", fileType);
        m.putUint32("general.quantization_version", QUANTIZATION_VERSION);
        m.putUint32("llama.vocab_size", c.vocabSize());
        m.putUint32("llama.context_length", c.maxPositionEmbeddings());
        m.putUint32("llama.embedding_length", c.hiddenSize());
        m.putUint32("llama.block_count", c.numHiddenLayers());
        m.putUint32("llama.feed_forward_length", c.intermediateSize());
        m.putUint32("llama.attention.head_count", c.numAttentionHeads());
        m.putUint32("llama.attention.head_count_kv", c.numKeyValueHeads());
        // Written always: head_dim may differ from hidden / heads, and llama.cpp would otherwise assume the quotient.
        m.putUint32("llama.attention.key_length", c.headDim());
        m.putUint32("llama.attention.value_length", c.headDim());
        m.putFloat32("llama.attention.layer_norm_rms_epsilon", (float) c.rmsNormEps());
        m.putFloat32("llama.rope.freq_base", (float) c.ropeTheta());
        m.putUint32("llama.rope.dimension_count", c.headDim());
        return m;
    }
}
