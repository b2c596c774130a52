package org.qalora.worker.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.PeftKeys;

/**
 * Adapter weights plus AdamW moments and the step count, keyed by PEFT key names in a fixed order (layer, then
 * q, k, v, o, gate, up, down; A before B). Host arrays, so it can be shipped between Spark tasks; the arrays
 * returned by the accessors are the state's own (do not modify them unless you own the state).
 */
public final class AdapterState implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    private final QaloraConfig config;
    private final LinkedHashMap<String, long[]> shapes;
    private final Map<String, float[]> weights;
    private final Map<String, float[]> adamM;
    private final Map<String, float[]> adamV;
    private final long step;

    AdapterState(QaloraConfig config, LinkedHashMap<String, long[]> shapes, Map<String, float[]> weights,
                 Map<String, float[]> adamM, Map<String, float[]> adamV, long step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            long n = e.getValue()[0] * e.getValue()[1];
            for (Map<String, float[]> part : List.of(weights, adamM, adamV)) {
                float[] a = part.get(e.getKey());
                if (a == null || a.length != n) {
                    throw new IllegalArgumentException("adapter state tensor " + e.getKey() + " is missing or has "
                            + (a == null ? 0 : a.length) + " elements instead of " + n);
                }
            }
        }
        this.config = config;
        this.shapes = shapes;
        this.weights = weights;
        this.adamM = adamM;
        this.adamV = adamV;
        this.step = step;
    }

    /** Fresh adapter: xavier-uniform A, zero B, zero moments, step 0 (deterministic in {@code seed}). */
    public static AdapterState initial(LlamaModel model, QaloraConfig adapter, long seed) {
        QaloraAdapter.checkFits(model, adapter);
        return fromWeights(model.dims(), adapter, QaloraAdapter.initialWeights(model.dims(), adapter, seed), 0);
    }

    /**
     * The same fresh adapter from config.json alone (shapes plus the seed): what a driver that never loads weights
     * starts training from. Equal, bit for bit, to {@link #initial(LlamaModel, QaloraConfig, long)} on that model.
     */
    public static AdapterState initial(org.qalora.quant.config.LlamaConfig model, QaloraConfig adapter, long seed) {
        QaloraAdapter.checkFits(model, adapter);
        LlamaDims dims = LlamaDims.of(model);
        return fromWeights(dims, adapter, QaloraAdapter.initialWeights(dims, adapter, seed), 0);
    }

    /** A state holding the given weights with zero moments (e.g. a PEFT adapter read from disk). */
    public static AdapterState fromWeights(LlamaDims dims, QaloraConfig adapter, Map<String, float[]> weights, long step) {
        LinkedHashMap<String, long[]> shapes = shapesOf(dims, adapter);
        Map<String, float[]> w = new LinkedHashMap<>(), m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            float[] src = weights.get(e.getKey());
            if (src == null) {
                throw new IllegalArgumentException("adapter tensor " + e.getKey() + " is missing");
            }
            w.put(e.getKey(), src.clone());
            int n = (int) (e.getValue()[0] * e.getValue()[1]);
            m.put(e.getKey(), new float[n]);
            v.put(e.getKey(), new float[n]);
        }
        return new AdapterState(adapter, shapes, w, m, v, step);
    }

    /**
     * A state from weights and AdamW moments (e.g. averaged across Spark slots); every map must hold every key of
     * the model's adapter with the right size. The arrays are copied.
     */
    public static AdapterState of(LlamaDims dims, QaloraConfig adapter, Map<String, float[]> weights,
                                  Map<String, float[]> adamM, Map<String, float[]> adamV, long step) {
        return of(dims, adapter, weights, adamM, adamV, step, true);
    }

    /**
     * As {@link #of}, holding the given arrays themselves rather than copies: for a caller that hands them over (a
     * state read for one training run, which {@link LocalTrainer#runConsuming} then trains in), so the executor does
     * not hold the state twice.
     */
    public static AdapterState adopt(LlamaDims dims, QaloraConfig adapter, Map<String, float[]> weights,
                                     Map<String, float[]> adamM, Map<String, float[]> adamV, long step) {
        return of(dims, adapter, weights, adamM, adamV, step, false);
    }

    private static AdapterState of(LlamaDims dims, QaloraConfig adapter, Map<String, float[]> weights,
                                   Map<String, float[]> adamM, Map<String, float[]> adamV, long step, boolean copy) {
        LinkedHashMap<String, long[]> shapes = shapesOf(dims, adapter);
        Map<String, float[]> w = new LinkedHashMap<>(), m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
        for (String key : shapes.keySet()) {
            w.put(key, take(weights, key, copy));
            m.put(key, take(adamM, key, copy));
            v.put(key, take(adamV, key, copy));
        }
        for (Map<String, float[]> part : List.of(weights, adamM, adamV)) {
            for (String key : part.keySet()) {
                if (!shapes.containsKey(key)) {
                    throw new IllegalArgumentException("adapter tensor " + key + " is not part of this adapter "
                            + "(targets " + adapter.orderedTargets() + ", " + dims.layers() + " layers)");
                }
            }
        }
        return new AdapterState(adapter, shapes, w, m, v, step);
    }

    private static float[] take(Map<String, float[]> part, String key, boolean copy) {
        float[] a = part.get(key);
        if (a == null) {
            throw new IllegalArgumentException("adapter tensor " + key + " is missing");
        }
        return copy ? a.clone() : a;
    }

    /** The shapes of every adapter tensor of a model, in key order (from config.json's dimensions alone). */
    public static LinkedHashMap<String, long[]> shapesOf(LlamaDims dims, QaloraConfig adapter) {
        LinkedHashMap<String, long[]> shapes = new LinkedHashMap<>();
        for (int l = 0; l < dims.layers(); l++) {
            for (Projection p : adapter.orderedTargets()) {
                shapes.put(PeftKeys.a(l, p), new long[] {adapter.rank(), p.inFeatures(dims) / adapter.groupSize()});
                shapes.put(PeftKeys.b(l, p), new long[] {p.outFeatures(dims), adapter.rank()});
            }
        }
        return shapes;
    }

    public QaloraConfig config() { return config; }

    public List<String> keys() { return new ArrayList<>(shapes.keySet()); }

    public float[] weights(String key) { return get(weights, key); }

    public float[] adamM(String key) { return get(adamM, key); }

    public float[] adamV(String key) { return get(adamV, key); }

    /** {@code [r, G]} for A, {@code [O, r]} for B. */
    public long[] shape(String key) {
        long[] s = shapes.get(key);
        if (s == null) {
            throw new IllegalArgumentException("no adapter tensor " + key);
        }
        return s.clone();
    }

    /** Optimizer steps taken so far. */
    public long step() { return step; }

    /** All weights in key order (the state's own arrays). */
    public Map<String, float[]> weightMap() { return java.util.Collections.unmodifiableMap(weights); }

    Map<String, float[]> adamMMap() { return adamM; }

    Map<String, float[]> adamVMap() { return adamV; }

    LinkedHashMap<String, long[]> shapeMap() { return shapes; }

    /** Writes the weights as a PEFT adapter directory (atomically; {@code dir} must not exist). */
    public void writePeft(String dir, String baseModel) {
        PeftAdapter.write(dir, config, weights, shapes, baseModel);
    }

    /** As {@link #writePeft(String, String)}, through {@code paths} (e.g. the Spark job's configuration). */
    public void writePeft(String dir, String baseModel, org.qalora.quant.io.HadoopPaths paths) {
        PeftAdapter.write(dir, config, weights, shapes, baseModel, paths);
    }

    private static float[] get(Map<String, float[]> part, String key) {
        float[] a = part.get(key);
        if (a == null) {
            throw new IllegalArgumentException("no adapter tensor " + key);
        }
        return a;
    }
}
