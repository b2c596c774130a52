package org.qalora.worker.model;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/**
 * A frozen LLaMA model resident on a backend: embeddings, decoder layers, final norm, lm_head. Projections are
 * dense (an HF checkpoint) or group-quantized (GPTQ). A quantized projection is held once, in the backend's kernel
 * layout: {@link #quantizedMatrix} and {@link #quantizedMatrices} rebuild the canonical matrices from it for the
 * merge, rather than the model keeping the matrices as loaded beside it (which doubled a training executor's heap
 * per layer, docs/PERFORMANCE.md). Immutable; safe to share between trainers on one backend.
 */
public final class LlamaModel {
    private final LlamaDims dims;
    private final Backend backend;
    private final Tensor embedding;       // [V, H]
    private final List<LayerWeights> layers;
    private final Tensor finalNorm;       // [H]
    private final LinearWeight lmHead;    // [V, H], the embedding when tied
    /** The quantized projections' weights by prefix (references into {@link #layers}, not copies). */
    private final java.util.SortedMap<String, LinearWeight> quantized;
    private final String source;
    private RopeTables rope;

    /**
     * @param quantized names the projections that are group-quantized, by prefix; only its keys are kept (the
     *                  layers' quantized weights are the one copy, and each key must name one of them)
     */
    public LlamaModel(LlamaDims dims, Backend backend, Tensor embedding, List<LayerWeights> layers, Tensor finalNorm,
                      LinearWeight lmHead, Map<String, QuantizedMatrix> quantized, String source) {
        this(dims, backend, embedding, layers, finalNorm, lmHead, quantized.keySet(), source);
    }

    /** @param quantizedPrefixes the projections that are group-quantized (each must name a quantized weight) */
    LlamaModel(LlamaDims dims, Backend backend, Tensor embedding, List<LayerWeights> layers, Tensor finalNorm,
               LinearWeight lmHead, java.util.Set<String> quantizedPrefixes, String source) {
        if (layers.size() != dims.layers()) {
            throw new IllegalArgumentException("config has " + dims.layers() + " layers, got weights for " + layers.size());
        }
        this.dims = dims;
        this.backend = backend;
        this.embedding = embedding;
        this.layers = List.copyOf(layers);
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        this.quantized = new TreeMap<>();
        for (int l = 0; l < dims.layers(); l++) {
            for (Projection p : Projection.values()) {
                LinearWeight w = layers.get(l).get(p);
                if (quantizedPrefixes.contains(p.prefix(l))) {
                    if (!w.quantized()) {
                        throw new IllegalArgumentException(p.prefix(l) + " is named quantized but its weight is dense");
                    }
                    quantized.put(p.prefix(l), w);
                }
            }
        }
        if (quantized.size() != quantizedPrefixes.size()) {
            java.util.Set<String> unknown = new java.util.TreeSet<>(quantizedPrefixes);
            unknown.removeAll(quantized.keySet());
            throw new IllegalArgumentException("no such projections: " + unknown);
        }
        this.source = source;
    }

    /**
     * Loads an HF (dense) or GPTQ checkpoint directory from any Hadoop path onto a CPU backend using every core.
     */
    public static LlamaModel load(String location) {
        return ModelLoader.load(location, org.qalora.worker.backend.CpuBackend.withAllCores(), HadoopPaths.defaults());
    }

    /**
     * Loads a checkpoint onto the given backend through this machine's default Hadoop configuration (CLI use); inside
     * a Spark job use {@link #load(String, Backend, HadoopPaths)} with the job's configuration.
     */
    public static LlamaModel load(String location, Backend backend) {
        return ModelLoader.load(location, backend, HadoopPaths.defaults());
    }

    /** Loads a checkpoint onto the given backend, reading through {@code paths} (e.g. the Spark job's configuration). */
    public static LlamaModel load(String location, Backend backend, HadoopPaths paths) {
        return ModelLoader.load(location, backend, paths);
    }

    public LlamaDims dims() { return dims; }

    public Backend backend() { return backend; }

    public Tensor embedding() { return embedding; }

    public LayerWeights layer(int i) { return layers.get(i); }

    public Tensor finalNorm() { return finalNorm; }

    public LinearWeight lmHead() { return lmHead; }

    /** Where the model was loaded from (tokenizer files are copied from here on merge); null when built in memory. */
    public String source() { return source; }

    /** True when every decoder projection is group-quantized. */
    public boolean isQuantized() { return quantized.size() == dims.layers() * Projection.values().length; }

    /**
     * A quantized projection by prefix {@code model.layers.N.self_attn.q_proj}, rebuilt from the backend's copy (a
     * fresh host copy per call: let it go once read); null if dense.
     */
    public QuantizedMatrix quantizedMatrix(String prefix) {
        LinearWeight w = quantized.get(prefix);
        return w == null ? null : backend.quantizedMatrix(w);
    }

    /** Every quantized projection by prefix, sorted: a view that rebuilds each matrix when its value is read. */
    public Map<String, QuantizedMatrix> quantizedMatrices() { return new QuantizedMatrixView(backend, quantized); }

    /**
     * A model sharing everything with this one except the given quantized projections (by prefix), which are
     * placed on the backend anew. The merge uses it to check the merged model before writing it.
     */
    public LlamaModel withQuantized(Map<String, QuantizedMatrix> replacements) {
        List<LayerWeights> newLayers = new java.util.ArrayList<>();
        for (int l = 0; l < dims.layers(); l++) {
            Map<Projection, LinearWeight> proj = new java.util.EnumMap<>(layers.get(l).projections());
            for (Projection p : Projection.values()) {
                QuantizedMatrix m = replacements.get(p.prefix(l));
                if (m != null) {
                    if (!quantized.containsKey(p.prefix(l))) {
                        throw new IllegalArgumentException(p.prefix(l) + " is not quantized in this model");
                    }
                    proj.put(p, backend.quantizedWeight(m));
                }
            }
            newLayers.add(new LayerWeights(layers.get(l).inputNorm(), layers.get(l).postNorm(), proj));
        }
        return new LlamaModel(dims, backend, embedding, newLayers, finalNorm, lmHead, quantized.keySet(), source);
    }

    /** Rope tables covering at least {@code length} positions (grown on demand). */
    public synchronized RopeTables rope(int length) {
        if (rope == null || rope.length < length) {
            rope = new RopeTables(backend, dims.rope(), dims.headDim(), Math.max(length, 64));
        }
        return rope;
    }
}
