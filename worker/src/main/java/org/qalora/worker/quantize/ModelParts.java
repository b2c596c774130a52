package org.qalora.worker.quantize;

import java.io.IOException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.config.RopeScaling;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.LayerWeights;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;
import org.qalora.worker.model.RopeParams;

/**
 * The pieces of a dense HF checkpoint that GPTQ calibration puts on a backend: embeddings, norms, lm_head, and
 * each layer's dense projection weights on demand. {@link #prefixModel} assembles a model of the first
 * {@code l + 1} layers, which is all a calibration pass for layer {@code l} needs.
 */
final class ModelParts {
    final LlamaConfig config;
    final Checkpoint checkpoint;
    final Backend backend;
    private final Tensor embedding;       // [V, H]
    private final Tensor finalNorm;       // [H]
    private final LinearWeight lmHead;    // [V, H]
    private final List<Tensor[]> norms = new ArrayList<>(); // per layer {input_layernorm, post_attention_layernorm}, [H]

    ModelParts(Checkpoint checkpoint, LlamaConfig config, Backend backend) throws IOException {
        this.checkpoint = checkpoint;
        this.config = config;
        this.backend = backend;
        int v = config.vocabSize();
        int h = config.hiddenSize();
        embedding = backend.upload(dense("model.embed_tokens.weight", v, h), v, h);
        finalNorm = backend.upload(dense("model.norm.weight", h), h);
        lmHead = config.tieWordEmbeddings() ? backend.denseWeight(embedding)
                : backend.denseWeight(backend.upload(dense("lm_head.weight", v, h), v, h));
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            String p = "model.layers." + l + ".";
            norms.add(new Tensor[] {backend.upload(dense(p + "input_layernorm.weight", h), h),
                backend.upload(dense(p + "post_attention_layernorm.weight", h), h)});
        }
    }

    LlamaDims dims(int layers) {
        return dims(config, layers);
    }

    /** The worker's dimensions for a config, with {@code layers} decoder layers. */
    static LlamaDims dims(LlamaConfig c, int layers) {
        RopeScaling s = c.ropeScaling();
        RopeParams rope = s == null ? RopeParams.plain(c.ropeTheta())
                : RopeParams.llama3(c.ropeTheta(), s.factor(), s.lowFreqFactor(), s.highFreqFactor(),
                        s.originalMaxPositionEmbeddings());
        return new LlamaDims(c.vocabSize(), c.hiddenSize(), c.intermediateSize(), layers, c.numAttentionHeads(),
                c.numKeyValueHeads(), c.headDim(), (float) c.rmsNormEps(), rope, c.tieWordEmbeddings());
    }

    /** A dense tensor from the checkpoint, checked against the shape the config implies. */
    float[] dense(String name, long... shape) throws IOException {
        if (!checkpoint.contains(name)) {
            throw new FormatException(checkpoint.directory() + ": tensor " + name + " is missing from the checkpoint");
        }
        TensorInfo info = checkpoint.info(name);
        if (!info.hasShape(shape)) {
            throw new FormatException(checkpoint.directory() + ": tensor " + name + " has shape " + info.shapeString()
                    + " but config.json implies " + java.util.Arrays.toString(shape));
        }
        return checkpoint.floats(name);
    }

    /** Dense weight {@code [out, in]} of one projection. */
    float[] projectionWeight(int layer, Projection p) throws IOException {
        LlamaDims d = dims(config.numHiddenLayers());
        return dense(p.prefix(layer) + ".weight", p.outFeatures(d), p.inFeatures(d));
    }

    /** Layer weights from finished projection weights (any mix of dense and quantized). */
    LayerWeights layer(int l, Map<Projection, LinearWeight> projections) {
        return new LayerWeights(norms.get(l)[0], norms.get(l)[1], new EnumMap<>(projections));
    }

    /** A model made of the given first layers (their count sets the depth). */
    LlamaModel prefixModel(List<LayerWeights> layers) {
        return new LlamaModel(dims(layers.size()), backend, embedding, layers, finalNorm, lmHead, Map.of(), null);
    }
}
