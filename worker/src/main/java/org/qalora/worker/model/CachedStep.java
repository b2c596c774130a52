package org.qalora.worker.model;

import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.KvCacheShape;
import org.qalora.worker.backend.Tensor;

/**
 * Which (sequence, position) each row of a cached step is.
 *
 * @param sequences [N] the sequence of each row
 * @param positions [N] the position of each row within its sequence
 * @param prefill   for a prefill (one sequence, positions 0..N-1) the shape of its causal attention; null for a
 *                  decode step
 */
record CachedStep(int[] sequences, int[] positions, AttentionShape prefill) {

    static CachedStep prefill(LlamaDims d, int sequence, int tokens) {
        int[] seq = new int[tokens];
        int[] pos = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            seq[t] = sequence;
            pos[t] = t;
        }
        return new CachedStep(seq, pos, new AttentionShape(1, tokens, d.heads(), d.kvHeads(), d.headDim()));
    }

    static CachedStep decode(int[] sequences, int[] positions) {
        return new CachedStep(sequences, positions, null);
    }

    int rows() { return positions.length; }

    /** Copies row n of {@code x [N, C]} to cache row (sequences[n], positions[n]); a prefill is one block copy. */
    void write(Backend be, Tensor x, Tensor cache, KvCacheShape shape) {
        if (prefill != null) {
            be.copyRows(x, 0, cache, shape.row(sequences[0], 0), rows());
            return;
        }
        for (int n = 0; n < rows(); n++) {
            be.copyRows(x, n, cache, shape.row(sequences[n], positions[n]), 1);
        }
    }
}
