package org.qalora.worker.model;

import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;

/**
 * A model's quantized projections by prefix, as {@link QuantizedMatrix} values rebuilt from the backend's weights
 * on each read ({@link Backend#quantizedMatrix}). Why a view and not a map of matrices: the backend's copy is the
 * only one a loaded model keeps (a second, as loaded, was 0.15 GB per layer of LLaMA-7B), so a reader that walks
 * every projection (the merge writing a model) holds one rebuilt matrix at a time, not a whole second copy.
 * Unmodifiable; iteration is in key order.
 */
final class QuantizedMatrixView extends AbstractMap<String, QuantizedMatrix> {
    private final Backend backend;
    private final SortedMap<String, LinearWeight> weights;

    QuantizedMatrixView(Backend backend, SortedMap<String, LinearWeight> weights) {
        this.backend = backend;
        this.weights = weights;
    }

    @Override
    public int size() { return weights.size(); }

    @Override
    public boolean containsKey(Object key) { return weights.containsKey(key); }

    /** A fresh rebuild per call: hold the result only while it is needed. */
    @Override
    public QuantizedMatrix get(Object key) {
        LinearWeight w = weights.get(key);
        return w == null ? null : backend.quantizedMatrix(w);
    }

    @Override
    public Set<String> keySet() { return java.util.Collections.unmodifiableSet(weights.keySet()); }

    /** Entries whose {@code getValue()} rebuilds the matrix when called (each call, a fresh copy). */
    @Override
    public Set<Map.Entry<String, QuantizedMatrix>> entrySet() {
        return new AbstractSet<>() {
            @Override
            public int size() { return weights.size(); }

            @Override
            public Iterator<Map.Entry<String, QuantizedMatrix>> iterator() {
                Iterator<Map.Entry<String, LinearWeight>> it = weights.entrySet().iterator();
                return new Iterator<>() {
                    @Override
                    public boolean hasNext() { return it.hasNext(); }

                    @Override
                    public Map.Entry<String, QuantizedMatrix> next() {
                        Map.Entry<String, LinearWeight> e = it.next();
                        return new Rebuilt(e.getKey(), e.getValue());
                    }
                };
            }
        };
    }

    private final class Rebuilt implements Map.Entry<String, QuantizedMatrix> {
        private final String key;
        private final LinearWeight weight;

        Rebuilt(String key, LinearWeight weight) {
            this.key = key;
            this.weight = weight;
        }

        @Override
        public String getKey() { return key; }

        @Override
        public QuantizedMatrix getValue() { return backend.quantizedMatrix(weight); }

        @Override
        public QuantizedMatrix setValue(QuantizedMatrix value) {
            throw new UnsupportedOperationException("a model's quantized projections are read-only");
        }
    }
}
