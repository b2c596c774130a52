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
 * The pieces of a dense HF checkpoint that GPTQ calibration needs: the embedding table (on the host, to start the
 * hidden states), each layer's norms (on the backend) and each layer's dense projection weights on demand.
 *
 * <p>{@link #singleLayerModel} runs one decoder layer on given hidden states through the worker's whole-model
 * forward: its "embedding table" is the hidden states themselves ({@code [T, H]}, looked up with ids
 * {@code 0..T-1}), so layer {@code l} is evaluated once per sequence instead of re-running layers {@code 0..l-1}.
 */
final class ModelParts {
    final LlamaConfig config;
    final Checkpoint checkpoint;
    final Backend backend;
    private final List<Tensor[]> norms = new ArrayList<>(); // per layer {input_layernorm, post_attention_layernorm}, [H]

    ModelParts(Checkpoint checkpoint, LlamaConfig config, Backend backend) throws IOException {
        this.checkpoint = checkpoint;
        this.config = config;
        this.backend = backend;
        int h = config.hiddenSize();
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            String p = "model.layers." + l + ".";
            norms.add(new Tensor[] {backend.upload(dense(p + "input_layernorm.weight", h), h),
                backend.upload(dense(p + "post_attention_layernorm.weight", h), h)});
        }
    }

    /** The worker's dimensions for a config, with {@code layers} decoder layers and vocabulary {@code vocab}. */
    static LlamaDims dims(LlamaConfig c, int layers, int vocab) {
        RopeScaling s = c.ropeScaling();
        RopeParams rope = s == null ? RopeParams.plain(c.ropeTheta())
                : RopeParams.llama3(c.ropeTheta(), s.factor(), s.lowFreqFactor(), s.highFreqFactor(),
                        s.originalMaxPositionEmbeddings());
        return new LlamaDims(vocab, c.hiddenSize(), c.intermediateSize(), layers, c.numAttentionHeads(),
                c.numKeyValueHeads(), c.headDim(), (float) c.rmsNormEps(), rope, c.tieWordEmbeddings());
    }

    static LlamaDims dims(LlamaConfig c) {
        return dims(c, c.numHiddenLayers(), c.vocabSize());
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
        LlamaDims d = dims(config);
        return dense(p.prefix(layer) + ".weight", p.outFeatures(d), p.inFeatures(d));
    }

    /** The embeddings of each calibration sequence: {@code [n][T * H]}, the hidden states entering layer 0. */
    float[][] embed(CalibrationData data) throws IOException {
        int h = config.hiddenSize();
        float[] table = dense("model.embed_tokens.weight", config.vocabSize(), h); // [V, H]
        float[][] hidden = new float[data.sequences()][];
        for (int s = 0; s < data.sequences(); s++) {
            int[] ids = data.ids()[s];
            float[] x = new float[ids.length * h];                                 // [T, H]
            for (int t = 0; t < ids.length; t++) {
                System.arraycopy(table, ids[t] * h, x, t * h, h);
            }
            hidden[s] = x;
        }
        return hidden;
    }

    /** Layer {@code l}'s weights from finished projection weights (any mix of dense and quantized). */
    LayerWeights layer(int l, Map<Projection, LinearWeight> projections) {
        return new LayerWeights(norms.get(l)[0], norms.get(l)[1], new EnumMap<>(projections));
    }

    /**
     * A one-layer model whose embedding table is {@code hiddenTable [T, H]} (fill it per sequence and pass ids
     * {@code 0..T-1}); its final norm and zero lm_head only exist to satisfy the whole-model pass.
     */
    LlamaModel singleLayerModel(LayerWeights layer, Tensor hiddenTable, int seqLen) {
        int h = config.hiddenSize();
        Tensor ones = backend.upload(filled(h, 1f), h);
        LinearWeight zeroHead = backend.denseWeight(backend.upload(new float[seqLen * h], seqLen, h));
        return new LlamaModel(dims(config, 1, seqLen), backend, hiddenTable, List.of(layer), ones, zeroHead, Map.of(), null);
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }
}
