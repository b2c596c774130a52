package org.qalora.worker.model;

import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.IntTensor;
import org.qalora.worker.backend.KvCacheShape;
import org.qalora.worker.backend.Tensor;

/**
 * Which (sequence, position) each row of a cached step is: on the host for a prefill, in backend memory for a decode
 * step (so that a replayed step reads each step's rows where it runs).
 *
 * @param sequences [N] the sequence of each row (prefill)
 * @param positions [N] the position of each row within its sequence (prefill)
 * @param prefill   for a prefill (one sequence, positions 0..N-1) the shape of its causal attention; null for a
 *                  decode step
 * @param rows      decode: [2N] the sequences, then the positions, in backend memory
 */
record CachedStep(int[] sequences, int[] positions, AttentionShape prefill, IntTensor rows) {

    static CachedStep prefill(LlamaDims d, int sequence, int tokens) {
        int[] seq = new int[tokens];
        int[] pos = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            seq[t] = sequence;
            pos[t] = t;
        }
        return new CachedStep(seq, pos, new AttentionShape(1, tokens, d.heads(), d.kvHeads(), d.headDim()), null);
    }

    static CachedStep decode(IntTensor rows) {
        return new CachedStep(null, null, null, rows);
    }

    /** Copies row n of {@code x [N, C]} to its cache row; a prefill is one block copy. */
    void write(Backend be, Tensor x, Tensor cache, KvCacheShape shape) {
        if (prefill != null) {
            be.copyRows(x, 0, cache, shape.row(sequences[0], 0), positions.length);
        } else {
            be.writeCacheRows(x, cache, shape, rows);                                   // cache[(s,p)] = x[n]
        }
    }
}
