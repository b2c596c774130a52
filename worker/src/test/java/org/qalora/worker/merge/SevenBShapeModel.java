package org.qalora.worker.merge;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsStreamWriter;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;
import org.qalora.worker.train.AdapterState;

/**
 * A synthetic LLaMA-7B-shaped GPTQ checkpoint (hidden 4096, intermediate 11008, 32 heads, vocab 32000, int4 with
 * groups of 32, F16 embedding / norms / lm_head) with {@code layers} layers of random codes, and a random QA-LoRA
 * adapter (r 64, all seven projections). Written tensor by tensor (streamed), so making it needs little heap.
 * Random, not trained: for memory and layout measurements only.
 */
final class SevenBShapeModel {
    static final int HIDDEN = 4096, INTERMEDIATE = 11008, VOCAB = 32000, HEADS = 32, BITS = 4, GROUP = 32, RANK = 64;

    private SevenBShapeModel() {}

    static void write(Path modelDir, Path adapterDir, int layers) throws IOException {
        Files.createDirectories(modelDir);
        String config = """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": %d,
                 "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
                 "num_key_value_heads": %d, "vocab_size": %d, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
                 "max_position_embeddings": 2048, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
                 "torch_dtype": "float16",
                 "quantization_config": {"quant_method": "gptq", "bits": %d, "group_size": %d, "desc_act": false,
                   "sym": false, "true_sequential": true, "damp_percent": 0.01, "checkpoint_format": "gptq_v2"}}
                """.formatted(HIDDEN, INTERMEDIATE, layers, HEADS, HEADS, VOCAB, BITS, GROUP);
        Files.writeString(modelDir.resolve(LlamaConfig.CONFIG_FILE), config);
        LlamaConfig cfg = LlamaConfig.read(modelDir.toString());
        LlamaDims dims = LlamaDims.of(cfg);
        writeWeights(modelDir, layers, (l, p, tensors) -> {
            int in = p.inFeatures(dims), out = p.outFeatures(dims), groups = in / GROUP;
            String prefix = p.prefix(l);
            tensors.add(new TensorInfo(prefix + ".qweight", DType.I32, new long[] {PackedCodes.wordsFor(in, BITS), out}));
            tensors.add(new TensorInfo(prefix + ".qzeros", DType.I32, new long[] {groups, PackedCodes.wordsFor(out, BITS)}));
            tensors.add(new TensorInfo(prefix + ".scales", DType.F16, new long[] {groups, out}));
            tensors.add(new TensorInfo(prefix + ".g_idx", DType.I32, new long[] {in}));
        });

        QaloraConfig adapter = QaloraConfig.allProjections(RANK, 16.0, GROUP, Pooling.MEAN, 0.0);
        Map<String, float[]> w = new LinkedHashMap<>(QaloraAdapter.initialWeights(dims, adapter, 1));
        SplittableRandom rng = new SplittableRandom(2);
        for (Map.Entry<String, float[]> e : w.entrySet()) {
            float[] v = e.getValue();
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (rng.nextDouble() - 0.5) * 0.02f; // B non-zero: a real fold
            }
        }
        AdapterState.fromWeights(dims, adapter, w, 0).writePeft(adapterDir.toString(), modelDir.toString());
    }

    /** The same shapes as a dense (unquantized) F16 checkpoint, the input of RTN quantization. */
    static void writeDense(Path modelDir, int layers) throws IOException {
        Files.createDirectories(modelDir);
        String config = """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": %d,
                 "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
                 "num_key_value_heads": %d, "vocab_size": %d, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
                 "max_position_embeddings": 2048, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
                 "torch_dtype": "float16"}
                """.formatted(HIDDEN, INTERMEDIATE, layers, HEADS, HEADS, VOCAB);
        Files.writeString(modelDir.resolve(LlamaConfig.CONFIG_FILE), config);
        LlamaDims dims = LlamaDims.of(LlamaConfig.read(modelDir.toString()));
        writeWeights(modelDir, layers, (l, p, tensors) -> tensors.add(new TensorInfo(p.prefix(l) + ".weight", DType.F16,
                new long[] {p.outFeatures(dims), p.inFeatures(dims)})));
    }

    /** Deterministic contents: random codes, fp16 scales of 0.01, v2 zeros of 8, contiguous groups, small floats. */
    private static byte[] data(TensorInfo t) {
        ByteBuffer b = ByteBuffer.allocate((int) t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        SplittableRandom rng = new SplittableRandom(t.name().hashCode());
        String n = t.name();
        if (n.endsWith(".qweight")) {
            while (b.hasRemaining()) {
                b.putInt(rng.nextInt());
            }
        } else if (n.endsWith(".qzeros")) {
            while (b.hasRemaining()) {
                b.putInt(0x88888888);
            }
        } else if (n.endsWith(".g_idx")) {
            for (int i = 0; b.hasRemaining(); i++) {
                b.putInt(i / GROUP);
            }
        } else if (n.endsWith(".scales")) {
            while (b.hasRemaining()) {
                b.putShort(Float.floatToFloat16(0.01f));
            }
        } else {
            while (b.hasRemaining()) {
                b.putShort(Float.floatToFloat16((float) (rng.nextDouble() - 0.5) * 0.1f));
            }
        }
        return b.array();
    }

    static String describe() {
        return new String(("hidden " + HIDDEN + ", intermediate " + INTERMEDIATE + ", vocab " + VOCAB + ", int4 g32, r "
                + RANK).getBytes(StandardCharsets.UTF_8), StandardCharsets.UTF_8);
    }

    /** The tensors of one projection of one layer, in the checkpoint's order. */
    private interface ProjectionTensors {
        void add(int layer, Projection p, List<TensorInfo> tensors);
    }

    /** model.safetensors: embeddings, lm_head, the norms, and each layer's projections as {@code projection} lists them. */
    private static void writeWeights(Path modelDir, int layers, ProjectionTensors projection) throws IOException {
        List<TensorInfo> tensors = new ArrayList<>();
        tensors.add(new TensorInfo("model.embed_tokens.weight", DType.F16, new long[] {VOCAB, HIDDEN}));
        tensors.add(new TensorInfo("lm_head.weight", DType.F16, new long[] {VOCAB, HIDDEN}));
        tensors.add(new TensorInfo("model.norm.weight", DType.F16, new long[] {HIDDEN}));
        for (int l = 0; l < layers; l++) {
            tensors.add(new TensorInfo("model.layers." + l + ".input_layernorm.weight", DType.F16, new long[] {HIDDEN}));
            tensors.add(new TensorInfo("model.layers." + l + ".post_attention_layernorm.weight", DType.F16,
                    new long[] {HIDDEN}));
            for (Projection p : Projection.values()) {
                projection.add(l, p, tensors);
            }
        }
        HadoopPaths.defaults().writeAtomically(modelDir.resolve("model.safetensors").toString(),
                o -> SafetensorsStreamWriter.write(o, tensors, Map.of(), (t, out) -> out.write(data(t))));
    }
}
