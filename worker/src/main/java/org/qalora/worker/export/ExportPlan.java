package org.qalora.worker.export;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gguf.GgmlType;
import org.qalora.quant.gguf.Q41Blocks;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;

/**
 * What a GGUF export will write, decided and checked from config.json and the checkpoint's tensor headers before
 * any byte is written: every tensor's GGUF name, shape, type and source, with the refusals (a missing or misshapen
 * tensor, codes that do not fit Q4_1) naming the tensor and the fix.
 *
 * <pre>
 *   HF tensor                                   GGUF tensor               type
 *   model.embed_tokens.weight      [V, H]       token_embd.weight {H, V}   F16
 *   model.layers.N.input_layernorm [H]          blk.N.attn_norm.weight     F32
 *   model.layers.N.self_attn.q_proj             blk.N.attn_q.weight        Q4_1 (rows in RoPE order), or F16
 *   ... k_proj / v_proj / o_proj                attn_k (RoPE order) / attn_v / attn_output
 *   ... post_attention_layernorm                blk.N.ffn_norm.weight      F32
 *   ... mlp.gate_proj / up_proj / down_proj     ffn_gate / ffn_up / ffn_down
 *   model.norm.weight                           output_norm.weight         F32
 *   lm_head.weight (absent when tied)           output.weight              F16 (none when tied: llama.cpp reuses
 *                                                                                  token_embd)
 * </pre>
 *
 * Dense 2-D weights are F16 (as convert_hf_to_gguf.py --outtype f16 writes them; bf16 values are exact in F16 except
 * below 2^-14, where the rounding is reported); norms stay F32 (as ggml needs for 1-D tensors).
 */
final class ExportPlan {
    enum Source { DENSE, Q4_1, DEQUANTIZED }

    /**
     * One tensor to write.
     *
     * @param hfName   the HF tensor (DENSE) or projection prefix (Q4_1, DEQUANTIZED)
     * @param dims     GGUF dims, innermost first
     * @param rowOrder output row r takes HF row rowOrder[r]; null keeps the order
     */
    record Tensor(String ggufName, String hfName, Source source, GgmlType type, long[] dims, int[] rowOrder) {}

    private final LlamaConfig config;
    private final List<Tensor> tensors;

    private ExportPlan(LlamaConfig config, List<Tensor> tensors) {
        this.config = config;
        this.tensors = tensors;
    }

    LlamaConfig config() { return config; }

    List<Tensor> tensors() { return tensors; }

    boolean anyQ41() {
        return tensors.stream().anyMatch(t -> t.source() == Source.Q4_1);
    }

    static ExportPlan of(Checkpoint ck, boolean allowDequantized) throws IOException {
        LlamaConfig c = ck.config();
        if (c.ropeScaling() != null) {
            throw new IllegalArgumentException(ck.directory() + "/config.json: llama3 rope scaling is not exported to"
                    + " GGUF yet (llama.cpp needs a rope_freqs tensor for it); export a model with default RoPE");
        }
        LlamaDims dims = LlamaDims.of(c);
        int h = c.hiddenSize(), v = c.vocabSize();
        GptqConfig gptq = c.quantization();
        List<Tensor> out = new ArrayList<>();
        List<String> misfits = new ArrayList<>();
        out.add(dense(ck, "model.embed_tokens.weight", "token_embd.weight", GgmlType.F16, v, h));
        for (int l = 0; l < c.numHiddenLayers(); l++) {
            String blk = "blk." + l + ".";
            String hf = "model.layers." + l + ".";
            out.add(dense(ck, hf + "input_layernorm.weight", blk + "attn_norm.weight", GgmlType.F32, h));
            for (Projection p : Projection.values()) {
                int rows = p.outFeatures(dims), cols = p.inFeatures(dims);
                out.add(projection(ck, gptq, p.prefix(l), tensorName(l, p), rows, cols, RopeRowOrder.of(p, c),
                        allowDequantized, misfits));
            }
            out.add(dense(ck, hf + "post_attention_layernorm.weight", blk + "ffn_norm.weight", GgmlType.F32, h));
        }
        out.add(dense(ck, "model.norm.weight", "output_norm.weight", GgmlType.F32, h));
        if (!(c.tieWordEmbeddings() && !ck.contains("lm_head.weight"))) {
            out.add(dense(ck, "lm_head.weight", "output.weight", GgmlType.F16, v, h));
        }
        if (!misfits.isEmpty()) {
            throw new IllegalArgumentException(ck.directory() + ": " + misfits.size() + " quantized projection(s) do not"
                    + " fit GGUF Q4_1, the first: " + misfits.get(0) + ". Re-quantize with --bits 4 (or 2, 3) and a group"
                    + " size that is a multiple of 32 (qalora quantize --bits 4 --group-size 32), or pass"
                    + " --allow-dequantized to store such projections as F16 weights (exact to half rounding, 4x larger"
                    + " than Q4_1)");
        }
        return new ExportPlan(c, List.copyOf(out));
    }

    /** The GGUF tensor of projection {@code p} in layer {@code layer}: {@code blk.3.attn_q.weight}. */
    static String tensorName(int layer, Projection p) {
        return "blk." + layer + "." + ggufName(p) + ".weight";
    }

    /** llama.cpp's names (LLM_TENSOR_NAMES for LLM_ARCH_LLAMA). */
    private static String ggufName(Projection p) {
        return switch (p) {
            case Q -> "attn_q";
            case K -> "attn_k";
            case V -> "attn_v";
            case O -> "attn_output";
            case GATE -> "ffn_gate";
            case UP -> "ffn_up";
            case DOWN -> "ffn_down";
        };
    }

    private static Tensor projection(Checkpoint ck, GptqConfig gptq, String prefix, String ggufName, int rows, int cols,
                                     int[] order, boolean allowDequantized, List<String> misfits) {
        long[] dims = {cols, rows};
        boolean quantized = ck.contains(prefix + ".qweight");
        if (quantized != (gptq != null)) {
            throw new IllegalArgumentException(ck.directory() + ": " + prefix + (quantized
                    ? " is stored as GPTQ (qweight) but config.json has no quantization_config"
                    : ".weight is dense but config.json declares GPTQ quantization")
                    + ": the quantization config contradicts the tensors");
        }
        if (!quantized) {
            requireShape(ck, prefix + ".weight", rows, cols);
            return new Tensor(ggufName, prefix + ".weight", Source.DENSE, GgmlType.F16, dims, order);
        }
        int bits = gptq.bits(), group = gptq.groupSizeFor(cols);
        if ((long) cols * bits % 32 != 0 || cols % group != 0) {
            throw new IllegalArgumentException(ck.directory() + ": " + prefix + ": " + cols + " inputs do not make whole "
                    + bits + "-bit words and groups of " + group + "; the quantization config does not fit the model");
        }
        requireShape(ck, prefix + ".qweight", (long) cols * bits / 32, rows);
        requireShape(ck, prefix + ".scales", cols / group, rows);
        if (!ck.contains(prefix + ".qzeros")) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + prefix + ".qzeros is missing: " + prefix
                    + " is not a complete GPTQ projection");
        }
        if (bits <= 4 && group % Q41Blocks.BLOCK == 0) {
            return new Tensor(ggufName, prefix, Source.Q4_1, GgmlType.Q4_1, dims, order);
        }
        if (!allowDequantized) {
            misfits.add(prefix + " (" + bits + "-bit codes, groups of " + group + (bits > 4 ? ": Q4_1 holds 4-bit codes"
                    : ": Q4_1 blocks are 32 weights, so a group must be whole blocks") + ")");
        }
        return new Tensor(ggufName, prefix, Source.DEQUANTIZED, GgmlType.F16, dims, order);
    }

    private static Tensor dense(Checkpoint ck, String hfName, String ggufName, GgmlType type, long... hfShape) {
        requireShape(ck, hfName, hfShape);
        TensorInfo info = ck.info(hfName);
        if (!info.dtype().isFloatingPoint()) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + hfName + " is " + info.dtype()
                    + ", expected a float type (F32, F16 or BF16)");
        }
        long[] dims = new long[hfShape.length];
        for (int i = 0; i < hfShape.length; i++) {
            dims[i] = hfShape[hfShape.length - 1 - i];
        }
        return new Tensor(ggufName, hfName, Source.DENSE, type, dims, null);
    }

    private static void requireShape(Checkpoint ck, String name, long... shape) {
        if (!ck.contains(name)) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + name + " " + java.util.Arrays.toString(shape)
                    + " is missing");
        }
        TensorInfo info = ck.info(name);
        if (!info.hasShape(shape)) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + name + " has shape " + info.shapeString()
                    + " but config.json implies " + java.util.Arrays.toString(shape));
        }
        if (name.endsWith(".qweight") && info.dtype() != DType.I32) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + name + " is " + info.dtype()
                    + ", GPTQ packs codes in I32");
        }
    }

}
