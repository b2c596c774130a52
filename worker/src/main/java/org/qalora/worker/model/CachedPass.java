package org.qalora.worker.model;

import java.util.HashMap;
import java.util.Map;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.BackendChecks;
import org.qalora.worker.backend.IntTensor;
import org.qalora.worker.backend.RepeatedStep;
import org.qalora.worker.backend.Tensor;

/**
 * Inference with a key/value cache: a prompt is run once (prefill), then each new token of each sequence costs
 * one row through every layer (decode). Only the rows whose logits are wanted go through lm_head (the last prompt
 * position; every decoded token). A decode step of N rows is built once per N and run for every token through
 * {@link Backend#repeatable}, which a GPU replays as a CUDA graph. Not thread-safe: one generation at a time per
 * instance; {@link #close} frees the recordings.
 */
public final class CachedPass implements AutoCloseable {
    private final LlamaModel model;
    private final QaloraAdapter adapter;
    private final KvCache cache;
    private final Map<Integer, DecodeStep> decodeSteps = new HashMap<>();     // by N: batches shrink as sequences end
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
        int n = ids.length;
        int[] index = new int[3 * n];                                                   // ids | sequences | positions
        for (int i = 0; i < n; i++) {
            int position = cache.length(sequences[i]);
            if (position == 0) {
                throw new IllegalStateException("sequence " + sequences[i] + " has no prompt yet: prefill it first");
            }
            index[i] = ids[i];
            index[n + i] = sequences[i];
            index[2 * n + i] = position;
        }
        // The step reads these from backend memory, so they are checked here, on the host.
        BackendChecks.tokenIds(ids, model.dims().vocab());
        BackendChecks.cacheRows(cache.shape(), sequences, java.util.Arrays.copyOfRange(index, 2 * n, 3 * n));
        DecodeStep step = decodeSteps.computeIfAbsent(n, DecodeStep::new);
        Backend be = model.backend();
        be.writeInts(step.index, index);
        step.run.run();
        for (int i = 0; i < n; i++) {
            cache.setLength(sequences[i], index[2 * n + i] + 1);
        }
        return be.download(step.logits);
    }

    /** Frees what the decode steps recorded (a GPU's graphs); the pass can no longer decode. */
    @Override
    public void close() {
        decodeSteps.values().forEach(s -> s.run.close());
        decodeSteps.clear();
    }

    /**
     * One decode step of N rows, built once and run for every token ({@link Backend#repeatable}: a GPU replays it as
     * a graph): everything that changes from token to token is in {@code index}, which the step reads in backend
     * memory, and the rope tables cover the whole cache, so no Java value of one token is baked in.
     */
    private final class DecodeStep {
        final IntTensor index;          // [3N] ids, then sequences, then positions
        final Tensor logits;            // [N, V]
        final RepeatedStep run;

        DecodeStep(int n) {
            Backend be = model.backend();
            LlamaDims d = model.dims();
            StepActivations a = new StepActivations(model, adapter == null ? null : adapter.config(), n, null);
            index = be.allocateInts(3 * n);
            logits = be.allocateActivation(n, d.vocab());
            IntTensor ids = index.slice(0, n), rows = index.slice(n, 2 * n), positions = index.slice(2 * n, n);
            RopeTables rope = model.rope(cache.shape().capacity());
            CachedStep step = CachedStep.decode(rows);
            run = be.repeatable(() -> {
                be.embedding(positions, rope.cos, a.cos);                               // cos[N,d/2] at positions
                be.embedding(positions, rope.sin, a.sin);                               // sin[N,d/2]
                be.embedding(ids, model.embedding(), a.residual[0]);                    // x[N,H]
                Tensor hidden = layers(a, step);                                        // [N,H]
                be.linear(hidden, model.lmHead(), logits);                              // logits[N,V]
            });
        }
    }

    /** Embedding, every layer, final norm; returns the normed hidden states {@code [N, H]}. */
    private Tensor run(StepActivations a, CachedStep step, int[] ids) {
        Backend be = model.backend();
        RopeTables rope = model.rope(ids.length);                                       // prefill: positions 0..N-1
        be.embedding(step.positions(), rope.cos, a.cos);                                // cos[N,d/2] at positions
        be.embedding(step.positions(), rope.sin, a.sin);                                // sin[N,d/2]
        be.embedding(ids, model.embedding(), a.residual[0]);                            // x[N,H]
        return layers(a, step);
    }

    /**
     * Every layer, then the final norm, from {@code a.residual[0]}; returns the normed hidden states {@code [N, H]}.
     * Each layer computes the norm that reads its output (the next layer's input norm, or the final norm), so that a
     * GPU can fold it into the layer's last product.
     */
    private Tensor layers(StepActivations a, CachedStep step) {
        Backend be = model.backend();
        LlamaDims d = model.dims();
        be.rmsNorm(a.residual[0], model.layer(0).inputNorm(), d.rmsEps(), a.a1, a.rstd1);   // a1[N,H]
        for (int l = 0; l < d.layers(); l++) {
            var next = l + 1 < d.layers()
                    ? new CachedLayerPass.NextNorm(model.layer(l + 1).inputNorm(), a.a1, a.rstd1)
                    : new CachedLayerPass.NextNorm(model.finalNorm(), a.finalOut, a.finalRstd);
            CachedLayerPass.forward(model, l, adapter, a, step, cache, a.residual[l % 2], a.residual[(l + 1) % 2],
                    next);
        }
        return a.finalOut;                                                              // [N,H]
    }

    private Tensor logitBuffer(int rows) {
        return logitBuffers.computeIfAbsent(rows, r -> model.backend().allocateActivation(r, model.dims().vocab()));
    }
}
