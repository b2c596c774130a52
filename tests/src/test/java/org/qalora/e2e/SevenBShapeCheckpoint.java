package org.qalora.e2e;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.apache.hadoop.fs.FileSystem;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsStreamWriter;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;

/**
 * A dense F16 LLaMA checkpoint with LLaMA-7B's widths (hidden 4096, intermediate 11008, 32 heads of 128, vocab
 * 32000) and {@code layers} layers of random weights from a fixed seed, written straight onto a file system (HDFS in
 * the tests) in the HF sharded layout: {@code model-00001-of-00002.safetensors} (the embedding and the first half of
 * the layers), {@code model-00002-of-00002.safetensors} (the rest, the final norm, {@code lm_head}) and
 * {@code model.safetensors.index.json}, plus config.json and the fixture's 32000-piece LLaMA tokenizer. Each tensor
 * is generated and written in 1 MB chunks, so writing the 1.3 GB of a 2-layer model costs the test JVM no more heap
 * than that. Random, not trained: for memory and layout checks only.
 */
final class SevenBShapeCheckpoint {
    static final int HIDDEN = 4096, INTERMEDIATE = 11008, HEADS = 32, VOCAB = 32000;
    private static final int CHUNK = 1 << 20;

    private SevenBShapeCheckpoint() {}

    /** Writes the checkpoint into {@code dir} on {@code fs}; {@code scratch} is a local directory for config.json. */
    static void write(FileSystem fs, org.apache.hadoop.fs.Path dir, int layers, Path scratch) throws IOException {
        String config = """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": %d,
                 "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
                 "num_key_value_heads": %d, "vocab_size": %d, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
                 "max_position_embeddings": 2048, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
                 "torch_dtype": "float16"}
                """.formatted(HIDDEN, INTERMEDIATE, layers, HEADS, HEADS, VOCAB);
        Path local = Files.createDirectories(scratch);
        Files.writeString(local.resolve(LlamaConfig.CONFIG_FILE), config);
        LlamaDims dims = LlamaDims.of(LlamaConfig.read(local.toString()));
        fs.mkdirs(dir);
        fs.copyFromLocalFile(new org.apache.hadoop.fs.Path(local.resolve(LlamaConfig.CONFIG_FILE).toUri()),
                new org.apache.hadoop.fs.Path(dir, LlamaConfig.CONFIG_FILE));
        for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
            fs.copyFromLocalFile(new org.apache.hadoop.fs.Path(Fixtures.tokenizer().resolveSibling(f).toUri()),
                    new org.apache.hadoop.fs.Path(dir, f));
        }
        List<List<TensorInfo>> shards = List.of(new ArrayList<>(), new ArrayList<>());
        shards.get(0).add(new TensorInfo("model.embed_tokens.weight", DType.F16, new long[] {VOCAB, HIDDEN}));
        for (int l = 0; l < layers; l++) {
            List<TensorInfo> shard = shards.get(l < (layers + 1) / 2 ? 0 : 1);
            shard.add(new TensorInfo("model.layers." + l + ".input_layernorm.weight", DType.F16, new long[] {HIDDEN}));
            shard.add(new TensorInfo("model.layers." + l + ".post_attention_layernorm.weight", DType.F16,
                    new long[] {HIDDEN}));
            for (Projection p : Projection.values()) {
                shard.add(new TensorInfo(p.prefix(l) + ".weight", DType.F16,
                        new long[] {p.outFeatures(dims), p.inFeatures(dims)}));
            }
        }
        shards.get(1).add(new TensorInfo("model.norm.weight", DType.F16, new long[] {HIDDEN}));
        shards.get(1).add(new TensorInfo("lm_head.weight", DType.F16, new long[] {VOCAB, HIDDEN}));
        Map<String, String> weightMap = new TreeMap<>();
        long total = 0;
        for (int s = 0; s < shards.size(); s++) {
            String name = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
            try (OutputStream out = fs.create(new org.apache.hadoop.fs.Path(dir, name), false)) {
                SafetensorsStreamWriter.write(out, shards.get(s), Map.of(), SevenBShapeCheckpoint::data);
            }
            for (TensorInfo t : shards.get(s)) {
                weightMap.put(t.name(), name);
                total += t.byteSize();
            }
        }
        try (OutputStream out = fs.create(new org.apache.hadoop.fs.Path(dir, "model.safetensors.index.json"), false)) {
            out.write(SafetensorsWriter.indexJson(total, weightMap));
        }
    }

    /** Norms of 1 (as a real checkpoint's); everything else uniform in +-0.035 (std 0.02, LLaMA's init), per-tensor seed. */
    private static void data(TensorInfo t, OutputStream out) throws IOException {
        boolean norm = t.name().endsWith("norm.weight");
        SplittableRandom rng = new SplittableRandom(0x7B5EEDL ^ t.name().hashCode());
        ByteBuffer chunk = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        for (long left = t.numel(); left > 0; ) {
            chunk.clear();
            int n = (int) Math.min(left, CHUNK / 2);
            for (int i = 0; i < n; i++) {
                chunk.putShort(Float.floatToFloat16(norm ? 1f : (float) ((rng.nextDouble() * 2 - 1) * 0.0346)));
            }
            out.write(chunk.array(), 0, 2 * n);
            left -= n;
        }
    }

    static String describe(int layers) {
        return "hidden " + HIDDEN + ", intermediate " + INTERMEDIATE + ", " + HEADS + " heads, vocab " + VOCAB + ", "
                + layers + " layers, F16";
    }
}
