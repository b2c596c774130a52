package org.qalora.driver.pipeline;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsWriter;

/**
 * The model of the no-argument demo run: a tiny LLaMA (2 layers, hidden 64, GQA 4/2 heads) with RANDOM weights
 * drawn from a seed (normal(0, 0.02) as HF initialises, RMSNorm weights 1) and the vocabulary of the bundled
 * 32000-piece tokenizer ({@code samples/tokenizer}), written as an unquantized HF checkpoint (bf16 safetensors,
 * config.json, tokenizer.json). It is NOT a trained model: it exists so that {@code bin/qalora train} exercises
 * every stage (quantize, prepare, rounds, merge, publish) from a fresh clone without downloading anything.
 */
public final class DemoModel {
    public static final int VOCAB = 32000, HIDDEN = 64, INTERMEDIATE = 128, LAYERS = 2, HEADS = 4, KV_HEADS = 2;
    private static final int HEAD_DIM = HIDDEN / HEADS;

    private DemoModel() {}

    /**
     * Makes sure {@code dir} holds the demo model generated from {@code seed}; writes it atomically if absent.
     * {@code tokenizerDir} is the bundled tokenizer directory (tokenizer.json, tokenizer_config.json).
     */
    public static void ensure(String dir, long seed, Path tokenizerDir, HadoopPaths paths) throws IOException {
        if (paths.exists(HadoopPaths.child(dir, LlamaConfig.CONFIG_FILE))) {
            return;
        }
        Path tokenizer = tokenizerDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizer)) {
            throw new IOException("the demo model needs the bundled tokenizer " + tokenizer
                    + ": run from a complete checkout of the repository");
        }
        byte[] tokenizerJson = Files.readAllBytes(tokenizer);
        Path tokenizerConfig = tokenizerDir.resolve("tokenizer_config.json");
        byte[] tokenizerConfigJson = Files.isRegularFile(tokenizerConfig) ? Files.readAllBytes(tokenizerConfig) : null;
        paths.writeDirectoryAtomically(dir, tmp -> {
            LlamaConfig config = LlamaConfig.parse(configJson(), HadoopPaths.child(dir, LlamaConfig.CONFIG_FILE), null);
            config.write(tmp, paths);
            weights(seed).write(HadoopPaths.child(tmp, "model.safetensors"), paths);
            paths.writeAtomically(HadoopPaths.child(tmp, "tokenizer.json"), out -> out.write(tokenizerJson));
            if (tokenizerConfigJson != null) {
                paths.writeAtomically(HadoopPaths.child(tmp, "tokenizer_config.json"), out -> out.write(tokenizerConfigJson));
            }
        });
    }

    static String configJson() {
        return """
                {
                  "architectures": ["LlamaForCausalLM"],
                  "model_type": "llama",
                  "_comment": "qalora demo model: random weights, NOT a trained model",
                  "vocab_size": %d,
                  "hidden_size": %d,
                  "intermediate_size": %d,
                  "num_hidden_layers": %d,
                  "num_attention_heads": %d,
                  "num_key_value_heads": %d,
                  "head_dim": %d,
                  "hidden_act": "silu",
                  "max_position_embeddings": 512,
                  "rms_norm_eps": 1e-05,
                  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
                  "tie_word_embeddings": false,
                  "bos_token_id": 1,
                  "eos_token_id": 2,
                  "pad_token_id": null,
                  "dtype": "bfloat16"
                }
                """.formatted(VOCAB, HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, HEAD_DIM);
    }

    /** All weights, in HF names, deterministic in {@code seed}. */
    static SafetensorsWriter weights(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        w.metadata("format", "pt");
        w.addFloats("model.embed_tokens.weight", DType.BF16, normal(rnd, VOCAB * HIDDEN), VOCAB, HIDDEN); // [V, H]
        int q = HEADS * HEAD_DIM;
        int kv = KV_HEADS * HEAD_DIM;
        for (int l = 0; l < LAYERS; l++) {
            String p = "model.layers." + l + ".";
            w.addFloats(p + "input_layernorm.weight", DType.BF16, ones(HIDDEN), HIDDEN);
            w.addFloats(p + "self_attn.q_proj.weight", DType.BF16, normal(rnd, q * HIDDEN), q, HIDDEN);   // [Hq*D, H]
            w.addFloats(p + "self_attn.k_proj.weight", DType.BF16, normal(rnd, kv * HIDDEN), kv, HIDDEN); // [Hkv*D, H]
            w.addFloats(p + "self_attn.v_proj.weight", DType.BF16, normal(rnd, kv * HIDDEN), kv, HIDDEN); // [Hkv*D, H]
            w.addFloats(p + "self_attn.o_proj.weight", DType.BF16, normal(rnd, HIDDEN * q), HIDDEN, q);   // [H, Hq*D]
            w.addFloats(p + "post_attention_layernorm.weight", DType.BF16, ones(HIDDEN), HIDDEN);
            w.addFloats(p + "mlp.gate_proj.weight", DType.BF16, normal(rnd, INTERMEDIATE * HIDDEN), INTERMEDIATE, HIDDEN); // [I, H]
            w.addFloats(p + "mlp.up_proj.weight", DType.BF16, normal(rnd, INTERMEDIATE * HIDDEN), INTERMEDIATE, HIDDEN);   // [I, H]
            w.addFloats(p + "mlp.down_proj.weight", DType.BF16, normal(rnd, HIDDEN * INTERMEDIATE), HIDDEN, INTERMEDIATE); // [H, I]
        }
        w.addFloats("model.norm.weight", DType.BF16, ones(HIDDEN), HIDDEN);
        w.addFloats("lm_head.weight", DType.BF16, normal(rnd, VOCAB * HIDDEN), VOCAB, HIDDEN); // [V, H]
        return w;
    }

    private static float[] normal(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (0.02 * rnd.nextGaussian());
        }
        return a;
    }

    private static float[] ones(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, 1f);
        return a;
    }

}
