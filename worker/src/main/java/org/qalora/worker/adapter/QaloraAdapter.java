package org.qalora.worker.adapter;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.Function;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;

/**
 * QA-LoRA adapters of a model resident on its backend, one {@link AdapterSlot} per (layer, target projection), in
 * the fixed key order: layer, then projection order q, k, v, o, gate, up, down; A before B.
 */
public final class QaloraAdapter {
    private final QaloraConfig config;
    private final List<AdapterSlot> slots;
    private final AdapterSlot[][] byLayer; // [layer][projection ordinal], null where not targeted
    private final Backend backend;

    private QaloraAdapter(QaloraConfig config, List<AdapterSlot> slots, AdapterSlot[][] byLayer, Backend backend) {
        this.config = config;
        this.slots = List.copyOf(slots);
        this.byLayer = byLayer;
        this.backend = backend;
    }

    /**
     * Places adapter tensors (keyed by PEFT names) on the model's backend after checking they fit the model.
     *
     * @param weights   every {@code lora_A} / {@code lora_B} tensor of every (layer, target); nothing else
     * @param withGrads allocate gradient buffers (training)
     */
    public static QaloraAdapter create(LlamaModel model, QaloraConfig config, Map<String, float[]> weights,
                                       boolean withGrads) {
        return create(model, config, weights, withGrads, false);
    }

    /**
     * As {@link #create(LlamaModel, QaloraConfig, Map, boolean)}; with {@code takeArrays} the arrays of
     * {@code weights} are handed over ({@link Backend#adopt}: the CPU trains in them, so the caller must not use
     * them afterwards) instead of copied.
     */
    public static QaloraAdapter create(LlamaModel model, QaloraConfig config, Map<String, float[]> weights,
                                       boolean withGrads, boolean takeArrays) {
        checkFits(model, config);
        LlamaDims dims = model.dims();
        Backend be = model.backend();
        List<AdapterSlot> slots = new ArrayList<>();
        AdapterSlot[][] byLayer = new AdapterSlot[dims.layers()][Projection.values().length];
        TreeSet<String> unused = new TreeSet<>(weights.keySet());
        int r = config.rank();
        for (int l = 0; l < dims.layers(); l++) {
            for (Projection p : config.orderedTargets()) {
                int in = p.inFeatures(dims), out = p.outFeatures(dims), groups = in / config.groupSize();
                float[] a = require(weights, PeftKeys.a(l, p), (long) r * groups, "[" + r + ", " + groups + "]");
                float[] b = require(weights, PeftKeys.b(l, p), (long) out * r, "[" + out + ", " + r + "]");
                unused.remove(PeftKeys.a(l, p));
                unused.remove(PeftKeys.b(l, p));
                AdapterSlot slot = new AdapterSlot(l, p, in, out, groups,
                        takeArrays ? be.adopt(a, r, groups) : be.upload(a, r, groups),
                        takeArrays ? be.adopt(b, out, r) : be.upload(b, out, r),
                        withGrads ? be.allocate(r, groups) : null, withGrads ? be.allocate(out, r) : null);
                slots.add(slot);
                byLayer[l][p.ordinal()] = slot;
            }
        }
        if (!unused.isEmpty()) {
            throw new IllegalArgumentException("adapter tensors " + unused + " do not match any target module of "
                    + "the adapter config (layers 0.." + (dims.layers() - 1) + ", targets " + config.orderedTargets()
                    + "): fix target_modules or remove them");
        }
        return new QaloraAdapter(config, slots, byLayer, be);
    }

    private static float[] require(Map<String, float[]> weights, String key, long size, String shape) {
        float[] w = weights.get(key);
        if (w == null) {
            throw new IllegalArgumentException("adapter tensor " + key + " " + shape + " is missing");
        }
        if (w.length != size) {
            throw new IllegalArgumentException("adapter tensor " + key + " has " + w.length
                    + " elements but the model needs " + shape + ": the adapter was made for another model, rank or group size");
        }
        for (int i = 0; i < w.length; i++) {
            if (!Float.isFinite(w[i])) {
                throw new IllegalArgumentException("adapter tensor " + key + " holds a non-finite value " + w[i]
                        + " at flat index " + i);
            }
        }
        return w;
    }

    /**
     * Rejects an adapter whose group size does not divide every targeted input, or differs from the quantization's,
     * and plain LoRA on a quantized base (it trains and merges on float weights).
     */
    public static void checkFits(LlamaModel model, QaloraConfig config) {
        LlamaDims dims = model.dims();
        for (Projection p : config.orderedTargets()) {
            if (config.plainLora() && model.quantizedMatrices().containsKey(p.prefix(0))) { // no rebuild
                throw new IllegalArgumentException("plain LoRA (--method lora) trains a float base and merges into its"
                        + " weights, but " + p.prefix(0) + " of this model is group-quantized: pass the float (HF) "
                        + "checkpoint, or use --method qalora for a quantized base");
            }
            int in = p.inFeatures(dims);
            if (in % config.groupSize() != 0) {
                throw new IllegalArgumentException("qalora_group_size " + config.groupSize() + " does not divide the "
                        + in + " inputs of " + p.shortName());
            }
            QuantizedMatrix q = model.quantizedMatrix(p.prefix(0));
            if (q != null && q.groupSize() != config.groupSize()) {
                throw new IllegalArgumentException("qalora_group_size " + config.groupSize()
                        + " differs from the model's quantization group size " + q.groupSize() + " (" + p.prefix(0)
                        + "): QA-LoRA pools over the quantization groups, so they must be equal");
            }
        }
    }

    /**
     * The checks of {@link #checkFits(LlamaModel, QaloraConfig)} that config.json alone can answer, so that a driver
     * can refuse a mismatched adapter before any executor loads the model: plain LoRA needs a float model, and the
     * pooling groups must divide every adapted projection's inputs and equal the quantization groups.
     */
    public static void checkFits(org.qalora.quant.config.LlamaConfig model, QaloraConfig config) {
        LlamaDims dims = LlamaDims.of(model);
        if (config.plainLora() && model.isQuantized()) {
            throw new IllegalArgumentException("plain LoRA (--method lora) trains a float base and merges into its"
                    + " weights, but this model is a " + model.quantization().bits() + "-bit GPTQ checkpoint: pass the"
                    + " float (HF) checkpoint, or use --method qalora for a quantized base");
        }
        for (Projection p : config.orderedTargets()) {
            int in = p.inFeatures(dims);
            if (in % config.groupSize() != 0) {
                throw new IllegalArgumentException("qalora_group_size " + config.groupSize() + " does not divide the "
                        + in + " inputs of " + p.shortName());
            }
            if (model.isQuantized() && model.quantization().groupSizeFor(in) != config.groupSize()) {
                throw new IllegalArgumentException("qalora_group_size " + config.groupSize()
                        + " differs from the model's quantization group size " + model.quantization().groupSizeFor(in)
                        + " (" + p.shortName() + ", config.json quantization_config): QA-LoRA pools over the"
                        + " quantization groups, so they must be equal");
            }
        }
    }

    /**
     * Fresh weights as the official qa-lora code initialises them: {@code A ~ xavier_uniform}, i.e.
     * {@code U(-a, a)} with {@code a = sqrt(6 / (G + r))}, and {@code B = 0}. Plain LoRA follows PEFT's LoRA instead
     * (what a LoRA baseline is run with): {@code A ~ kaiming_uniform(a = sqrt 5)}, i.e. {@code U(-a, a)} with
     * {@code a = 1 / sqrt(in)}, and {@code B = 0}. Deterministic in {@code seed}.
     */
    public static Map<String, float[]> initialWeights(LlamaDims dims, QaloraConfig config, long seed) {
        Map<String, float[]> w = new LinkedHashMap<>();
        SplittableRandom rng = new SplittableRandom(seed);
        int r = config.rank();
        for (int l = 0; l < dims.layers(); l++) {
            for (Projection p : config.orderedTargets()) {
                int groups = p.inFeatures(dims) / config.groupSize();
                double bound = config.plainLora() ? 1 / Math.sqrt(groups) : Math.sqrt(6.0 / (groups + r));
                float[] a = new float[r * groups];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
                }
                w.put(PeftKeys.a(l, p), a);
                w.put(PeftKeys.b(l, p), new float[p.outFeatures(dims) * r]);
            }
        }
        return w;
    }

    public QaloraConfig config() { return config; }

    /** All slots in key order. */
    public List<AdapterSlot> slots() { return slots; }

    /** The slot of (layer, projection), or null when that projection has no adapter. */
    public AdapterSlot slot(int layer, Projection p) { return byLayer[layer][p.ordinal()]; }

    /** Keys in the fixed order (A then B per slot). */
    public List<String> keys() {
        List<String> keys = new ArrayList<>();
        for (AdapterSlot s : slots) {
            keys.add(s.keyA());
            keys.add(s.keyB());
        }
        return keys;
    }

    /** Host copies of the weights, in key order. */
    public Map<String, float[]> weights() { return weights(backend::download); }

    /**
     * The weights in key order, for an adapter not used afterwards: the CPU backend's own arrays ({@link
     * Backend#release}), so a trainer's result is not a copy beside its tensors.
     */
    public Map<String, float[]> releaseWeights() { return weights(backend::release); }

    private Map<String, float[]> weights(Function<Tensor, float[]> host) {
        Map<String, float[]> w = new LinkedHashMap<>();
        for (AdapterSlot s : slots) {
            w.put(s.keyA(), host.apply(s.a));
            w.put(s.keyB(), host.apply(s.b));
        }
        return w;
    }

    /** Host copies of the gradients, in key order. */
    public Map<String, float[]> gradients() {
        Map<String, float[]> g = new LinkedHashMap<>();
        for (AdapterSlot s : slots) {
            requireGrads(s);
            g.put(s.keyA(), backend.download(s.gradA));
            g.put(s.keyB(), backend.download(s.gradB));
        }
        return g;
    }

    /** Overwrites the weights from host arrays keyed like {@link #weights()}. */
    public void setWeights(Map<String, float[]> weights) {
        for (AdapterSlot s : slots) {
            backend.write(s.a, require(weights, s.keyA(), s.a.size(), Arrays.toString(s.a.shape())));
            backend.write(s.b, require(weights, s.keyB(), s.b.size(), Arrays.toString(s.b.shape())));
        }
    }

    public void zeroGradients() {
        for (AdapterSlot s : slots) {
            requireGrads(s);
            backend.zero(s.gradA);
            backend.zero(s.gradB);
        }
    }

    private static void requireGrads(AdapterSlot s) {
        if (s.gradA == null) {
            throw new IllegalStateException("adapter was created without gradient buffers");
        }
    }
}
