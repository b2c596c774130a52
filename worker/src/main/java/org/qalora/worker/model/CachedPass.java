package org.qalora.worker.model;

import java.util.HashMap;
import java.util.Map;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;

/**
 * Inference with a key/value cache: a prompt is run once (prefill), then each new token of each sequence costs
 * one row through every layer (decode). Only the rows whose logits are wanted go through lm_head (the last prompt
 * position; every decoded token). Not thread-safe: one generation at a time per instance.
 */
public final class CachedPass {
    private final LlamaModel model;
    private final QaloraAdapter adapter;
    private final KvCache cache;
    private final Map<Integer, StepActivations> decodeSteps = new HashMap<>(); // by N: batches shrink as sequences end
    private final Map<Integer, Tensor> logitBuffers = new HashMap<>();         // [R, V] by R

    /** @param cache where prompts' and tokens' keys and values go; null for {@link #prefill} calls that only score */
    public CachedPass(LlamaModel model, QaloraAdapter adapter, KvCache cache) {
        this.model = model;
        this.adapter = adapter;
        this.cache = cache;
    }

    /**
     * Runs the prompt {@code ids} of sequence {@code sequence} from position 0 (its keys and values go into the
     * cache, replacing whatever the sequence held) and returns the logits of its last position {@code [V]}.
     */
    public float[] prefill(int sequence, int[] ids) {
        if (ids.length == 0) {
            throw new IllegalArgumentException("an empty prompt has no next-token logits: give at least one token");
        }
        if (cache != null && ids.length > cache.shape().capacity()) {
            throw new IllegalArgumentException("prompt of " + ids.length + " tokens does not fit the cache of "
                    + cache.shape().capacity() + " positions");
        }
        LlamaDims d = model.dims();
        CachedStep step = CachedStep.prefill(d, sequence, ids.length);
        StepActivations a = new StepActivations(model, adapter == null ? null : adapter.config(), ids.length,
                step.prefill());
        Tensor hidden = run(a, step, ids);                                              // [T,H]
        Backend be = model.backend();
        Tensor last = be.allocateActivation(1, d.hidden());
        be.copyRows(hidden, ids.length - 1, last, 0, 1);                                // [1,H]
        Tensor logits = logitBuffer(1);
        be.linear(last, model.lmHead(), logits);                                        // logits[1,V]
        if (cache != null) {
            cache.setLength(sequence, ids.length);
        }
        return be.download(logits);
    }

    /**
     * Feeds {@code ids[n]} as the next token of sequence {@code sequences[n]} (at position {@code length(s)}) and
     * returns the logits after it, {@code [N, V]} row-major.
     */
    public float[] decode(int[] sequences, int[] ids) {
        if (cache == null) {
            throw new IllegalStateException("decoding needs a KV cache: make the CachedPass with one");
        }
        if (sequences.length != ids.length || ids.length == 0) {
            throw new IllegalArgumentException("decode: " + sequences.length + " sequences but " + ids.length + " ids");
        }
        int[] positions = new int[ids.length];
        for (int n = 0; n < ids.length; n++) {
            positions[n] = cache.length(sequences[n]);
            if (positions[n] == 0) {
                throw new IllegalStateException("sequence " + sequences[n] + " has no prompt yet: prefill it first");
            }
        }
        StepActivations a = decodeSteps.computeIfAbsent(ids.length,
                n -> new StepActivations(model, adapter == null ? null : adapter.config(), n, null));
        Tensor hidden = run(a, CachedStep.decode(sequences, positions), ids);           // [N,H]
        Tensor logits = logitBuffer(ids.length);
        model.backend().linear(hidden, model.lmHead(), logits);                         // logits[N,V]
        for (int n = 0; n < ids.length; n++) {
            cache.setLength(sequences[n], positions[n] + 1);
        }
        return model.backend().download(logits);
    }

    /** Embedding, every layer, final norm; returns the normed hidden states {@code [N, H]}. */
    private Tensor run(StepActivations a, CachedStep step, int[] ids) {
        Backend be = model.backend();
        LlamaDims d = model.dims();
        int maxPosition = 0;
        for (int p : step.positions()) {
            maxPosition = Math.max(maxPosition, p);
        }
        RopeTables rope = model.rope(maxPosition + 1);
        be.embedding(step.positions(), rope.cos, a.cos);                                // cos[N,d/2] at positions
        be.embedding(step.positions(), rope.sin, a.sin);                                // sin[N,d/2]
        be.embedding(ids, model.embedding(), a.residual[0]);                            // x[N,H]
        for (int l = 0; l < d.layers(); l++) {
            CachedLayerPass.forward(model, l, adapter, a, step, cache, a.residual[l % 2], a.residual[(l + 1) % 2]);
        }
        be.rmsNorm(a.residual[d.layers() % 2], model.finalNorm(), d.rmsEps(), a.finalOut, a.finalRstd); // [N,H]
        return a.finalOut;
    }

    private Tensor logitBuffer(int rows) {
        return logitBuffers.computeIfAbsent(rows, r -> model.backend().allocateActivation(r, model.dims().vocab()));
    }
}
