package org.qalora.worker.model;

import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.KvCacheShape;
import org.qalora.worker.backend.Tensor;

/**
 * The keys and values (rope applied) that every layer has computed so far for a batch of sequences being
 * generated. With them a new token costs one row of work per layer instead of a pass over its whole sequence.
 * Stored in float32 on the model's backend (also under bf16 activations: the cache is read at every step, so its
 * rounding would accumulate), one {@code [sequences * capacity, kvHeads * d]} tensor per layer for keys and one
 * for values; position {@code p} of sequence {@code s} is row {@link KvCacheShape#row}.
 */
public final class KvCache {
    private final KvCacheShape shape;
    private final Tensor[] keys;   // L x [S*capacity, nKV*d]
    private final Tensor[] values; // L x [S*capacity, nKV*d]
    private final int[] lengths;   // [S] positions written so far

    public KvCache(LlamaModel model, int sequences, int capacity) {
        LlamaDims d = model.dims();
        Backend be = model.backend();
        this.shape = new KvCacheShape(sequences, capacity, d.heads(), d.kvHeads(), d.headDim());
        keys = new Tensor[d.layers()];
        values = new Tensor[d.layers()];
        for (int l = 0; l < d.layers(); l++) {
            keys[l] = be.allocate(shape.rows(), shape.kvWidth());
            values[l] = be.allocate(shape.rows(), shape.kvWidth());
        }
        lengths = new int[sequences];
    }

    /** Float32 elements a cache of this size holds (multiply by 4 for bytes), without allocating it. */
    public static long floats(LlamaDims d, int sequences, int capacity) {
        return 2L * d.layers() * sequences * capacity * d.kvHeads() * d.headDim();
    }

    public KvCacheShape shape() { return shape; }

    /** Positions of sequence {@code s} written so far: the position its next token takes. */
    public int length(int s) { return lengths[s]; }

    Tensor keys(int layer) { return keys[layer]; }

    Tensor values(int layer) { return values[layer]; }

    /** Marks positions {@code [0, length)} of sequence {@code s} as written (after a step wrote them). */
    void setLength(int s, int length) {
        if (length > shape.capacity()) {
            throw new IllegalStateException("sequence " + s + " would hold " + length + " positions; the cache was"
                    + " made for " + shape.capacity());
        }
        lengths[s] = length;
    }
}
