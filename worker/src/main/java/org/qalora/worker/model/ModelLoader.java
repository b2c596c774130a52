package org.qalora.worker.model;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/**
 * Reads an HF LLaMA checkpoint (dense, or GPTQ v1 / v2 / float zeros) from any Hadoop path onto a backend, checking
 * every tensor's shape against config.json, the quantization config against the tensors, and that weights are
 * finite. Errors name the checkpoint and tensor.
 */
final class ModelLoader {
    private ModelLoader() {}

    static LlamaModel load(String location, Backend be, HadoopPaths paths) {
        try (Checkpoint ck = Checkpoint.open(location, paths)) {
            LlamaConfig cfg = ck.config();
            // attention_bias / mlp_bias = true is refused by LlamaConfig itself; stray bias tensors are checked below
            LlamaDims dims = dims(cfg);
            GptqConfig gptq = cfg.quantization();
            int h = dims.hidden();
            Tensor embedding = be.upload(dense(ck, "model.embed_tokens.weight", dims.vocab(), h), dims.vocab(), h);
            List<LayerWeights> layers = new ArrayList<>();
            // Prefixes only: once the backend has its own layout of a matrix, nothing may keep the one loaded (a map
            // of them held to the end of the load would put every layer in memory twice at the peak).
            Set<String> quantized = new TreeSet<>();
            for (int l = 0; l < dims.layers(); l++) {
                Map<Projection, LinearWeight> proj = new EnumMap<>(Projection.class);
                for (Projection p : Projection.values()) {
                    String prefix = p.prefix(l);
                    int out = p.outFeatures(dims), in = p.inFeatures(dims);
                    requireZeroBias(ck, prefix);
                    boolean isQuantized = GptqCodec.isQuantized(ck, prefix);
                    if (isQuantized != (gptq != null)) {
                        throw new IllegalArgumentException(location + ": " + prefix + (isQuantized
                                ? " is stored as GPTQ (qweight) but config.json has no quantization_config"
                                : ".weight is dense but config.json declares GPTQ quantization")
                                + ": the quantization config contradicts the tensors");
                    }
                    if (isQuantized) {
                        QuantizedMatrix q = GptqCodec.read(ck, prefix, gptq);
                        if (q.outFeatures() != out || q.inFeatures() != in) {
                            throw new IllegalArgumentException(location + ": " + prefix + " is [" + q.outFeatures()
                                    + ", " + q.inFeatures() + "] but config.json implies [" + out + ", " + in + "]");
                        }
                        if (q.bits() != gptq.bits()) {
                            throw new IllegalArgumentException(location + ": " + prefix + " has " + q.bits()
                                    + "-bit codes but quantization_config says bits = " + gptq.bits());
                        }
                        requireFinite(q.scales(), location, prefix + ".scales");
                        requireFinite(q.zeros(), location, prefix + ".qzeros");
                        quantized.add(prefix);
                        proj.put(p, be.quantizedWeight(q));
                    } else {
                        proj.put(p, be.denseWeight(be.upload(dense(ck, prefix + ".weight", out, in), out, in)));
                    }
                }
                String base = "model.layers." + l + ".";
                layers.add(new LayerWeights(
                        be.upload(dense(ck, base + "input_layernorm.weight", h), h),
                        be.upload(dense(ck, base + "post_attention_layernorm.weight", h), h), proj));
            }
            Tensor finalNorm = be.upload(dense(ck, "model.norm.weight", h), h);
            LinearWeight lmHead;
            if (dims.tiedEmbeddings() && !ck.contains("lm_head.weight")) {
                lmHead = be.denseWeight(embedding);
            } else {
                lmHead = be.denseWeight(be.upload(dense(ck, "lm_head.weight", dims.vocab(), h), dims.vocab(), h));
            }
            return new LlamaModel(dims, be, embedding, layers, finalNorm, lmHead, quantized, location);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load model " + location + ": " + e.getMessage(), e);
        }
    }

    /** The architecture numbers of a parsed config.json. */
    static LlamaDims dims(LlamaConfig c) {
        return LlamaDims.of(c);
    }

    private static float[] dense(Checkpoint ck, String name, long... shape) throws IOException {
        if (!ck.contains(name)) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + name + " " + java.util.Arrays.toString(shape)
                    + " is missing");
        }
        if (!ck.info(name).hasShape(shape)) {
            throw new IllegalArgumentException(ck.directory() + ": tensor " + name + " has shape "
                    + ck.info(name).shapeString() + " but config.json implies " + java.util.Arrays.toString(shape));
        }
        float[] data = ck.floats(name);
        requireFinite(data, ck.directory(), name);
        return data;
    }

    /** AutoGPTQ writes all-zero {@code .bias} tensors for bias-free layers; anything else would be silently dropped. */
    private static void requireZeroBias(Checkpoint ck, String prefix) throws IOException {
        String name = prefix + ".bias";
        if (ck.contains(name)) {
            for (float b : ck.floats(name)) {
                if (b != 0f) {
                    throw new IllegalArgumentException(ck.directory() + ": tensor " + name + " is a non-zero bias; "
                            + "LLaMA projections have none and this worker does not apply them");
                }
            }
        }
    }

    static void requireFinite(float[] data, String where, String name) {
        for (int i = 0; i < data.length; i++) {
            if (!Float.isFinite(data[i])) {
                throw new IllegalArgumentException(where + ": tensor " + name + " holds a non-finite value " + data[i]
                        + " at flat index " + i);
            }
        }
    }
}
