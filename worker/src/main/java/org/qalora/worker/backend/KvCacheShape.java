package org.qalora.worker.backend;

/**
 * The geometry of a key/value cache for generation: {@code sequences} sequences of at most {@code capacity}
 * positions each, keys and values of {@code kvHeads} heads of {@code headDim}, read by {@code heads} query heads
 * (GQA as in {@link AttentionShape}). Position {@code p} of sequence {@code s} lives at row {@code s * capacity + p}
 * of a {@code [sequences * capacity, kvHeads * headDim]} tensor.
 */
public record KvCacheShape(int sequences, int capacity, int heads, int kvHeads, int headDim) {
    public KvCacheShape {
        if (sequences <= 0 || capacity <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("bad KV cache shape: " + sequences + " sequences x " + capacity
                    + " positions, heads " + heads + " kv " + kvHeads + " dim " + headDim
                    + " (heads must be a multiple of kv heads)");
        }
        if ((long) sequences * capacity > Integer.MAX_VALUE / ((long) kvHeads * headDim)) {
            throw new IllegalArgumentException("KV cache of " + sequences + " x " + capacity + " positions exceeds 2^31"
                    + " elements per tensor: generate fewer prompts at once or fewer tokens");
        }
    }

    public int rows() { return sequences * capacity; }

    public int queryWidth() { return heads * headDim; }

    public int kvWidth() { return kvHeads * headDim; }

    /** The cache row of position {@code position} of sequence {@code sequence}. */
    public int row(int sequence, int position) { return sequence * capacity + position; }
}
