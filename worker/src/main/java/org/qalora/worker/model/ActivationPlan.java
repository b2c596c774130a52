package org.qalora.worker.model;

import java.util.EnumMap;
import java.util.Map;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;

/**
 * Every activation buffer of one forward (and backward) pass over {@code batch x seqLen} tokens, allocated up front
 * so memory is known before the first step ({@link #floats()}). With {@code recompute}, only the residual stream
 * entering each layer is kept and one set of layer buffers is shared: backward re-runs each layer's forward from
 * its saved input just before differentiating it (trading one extra forward for L-1 layers of activations).
 */
public final class ActivationPlan {
    /** Per-projection adapter activations. */
    public static final class LoraBuffers {
        /**
         * [N, G] pooled (and dropped-out) input, what A multiplies; for plain LoRA [N, I], and null without
         * dropout: A then multiplies the projection's input itself, which the layer keeps anyway.
         */
        public final Tensor pooled;
        public final Tensor mask;   // same shape as pooled: dropout mask, null without dropout
        public final Tensor u;      // [N, r] s * pooled A^T

        LoraBuffers(Backend be, int n, int groups, int rank, boolean dropout, boolean copyInput) {
            pooled = copyInput ? be.allocate(n, groups) : null;
            mask = dropout ? be.allocate(n, groups) : null;
            u = be.allocateActivation(n, rank);  // only ever a matrix-product operand
        }
    }

    /** Whether the adapter needs its own input buffer: always when pooling, for plain LoRA only to apply dropout. */
    static boolean copiesInput(QaloraConfig adapter, boolean train) {
        return !adapter.plainLora() || dropout(adapter, train);
    }

    private static boolean dropout(QaloraConfig adapter, boolean train) {
        return train && adapter.dropout() > 0;
    }

    /** Forward activations of one decoder layer; shapes use N = batch * seqLen. */
    public static final class LayerBuffers {
        public final Tensor rstd1;  // [N]
        public final Tensor a1;     // [N, H] input_layernorm output
        public final Tensor q;      // [N, nH*d] after rope
        public final Tensor k;      // [N, nKV*d] after rope
        public final Tensor v;      // [N, nKV*d]
        public final Tensor attentionState; // what attention's backward needs (Backend#attentionState)
        public final Tensor attn;   // [N, nH*d] attention output, o_proj input
        public final Tensor mid;    // [N, H] residual after attention
        public final Tensor rstd2;  // [N]
        public final Tensor a2;     // [N, H] post_attention_layernorm output
        public final Tensor gate;   // [N, F]
        public final Tensor up;     // [N, F]
        public final Tensor act;    // [N, F] silu(gate) * up, down_proj input
        public final Map<Projection, LoraBuffers> lora = new EnumMap<>(Projection.class);

        LayerBuffers(Backend be, LlamaDims d, AttentionShape s, QaloraConfig adapter, boolean train) {
            int n = s.tokens();
            // The residual stream (mid) and the norm statistics stay float32; what feeds the matrix products may be
            // bf16 on a mixed-precision backend (Backend#allocateActivation).
            rstd1 = be.allocate(n);
            a1 = be.allocateActivation(n, d.hidden());
            q = be.allocateActivation(n, s.queryWidth());
            k = be.allocateActivation(n, s.kvWidth());
            v = be.allocateActivation(n, s.kvWidth());
            attentionState = be.attentionState(s);
            attn = be.allocateActivation(n, s.queryWidth());
            mid = be.allocate(n, d.hidden());
            rstd2 = be.allocate(n);
            a2 = be.allocateActivation(n, d.hidden());
            gate = be.allocateActivation(n, d.intermediate());
            up = be.allocateActivation(n, d.intermediate());
            act = be.allocateActivation(n, d.intermediate());
            if (adapter != null) {
                for (Projection p : adapter.orderedTargets()) {
                    lora.put(p, new LoraBuffers(be, n, p.inFeatures(d) / adapter.groupSize(), adapter.rank(),
                            dropout(adapter, train), copiesInput(adapter, train)));
                }
            }
        }
    }

    /** Backward scratch shared by all layers. */
    public static final class GradBuffers {
        public final Tensor dA1;    // [N, H]
        public final Tensor dQ;     // [N, nH*d]
        public final Tensor dK;     // [N, nKV*d]
        public final Tensor dV;     // [N, nKV*d]
        public final Tensor dAttn;  // [N, nH*d]
        public final Tensor dA2;    // [N, H]
        public final Tensor dAct;   // [N, F]
        public final Tensor dGate;  // [N, F]
        public final Tensor dUp;    // [N, F]
        public final Map<Projection, Tensor> dU = new EnumMap<>(Projection.class);      // [N, r]
        public final Map<Projection, Tensor> dPooled = new EnumMap<>(Projection.class); // [N, G], only with pooled

        GradBuffers(Backend be, LlamaDims d, AttentionShape s, QaloraConfig adapter) {
            int n = s.tokens();
            dA1 = be.allocateActivation(n, d.hidden());
            dQ = be.allocateActivation(n, s.queryWidth());
            dK = be.allocateActivation(n, s.kvWidth());
            dV = be.allocateActivation(n, s.kvWidth());
            dAttn = be.allocateActivation(n, s.queryWidth());
            dA2 = be.allocateActivation(n, d.hidden());
            dAct = be.allocateActivation(n, d.intermediate());
            dGate = be.allocateActivation(n, d.intermediate());
            dUp = be.allocateActivation(n, d.intermediate());
            if (adapter != null) {
                for (Projection p : adapter.orderedTargets()) {
                    dU.put(p, be.allocateActivation(n, adapter.rank()));
                    if (copiesInput(adapter, true)) {
                        dPooled.put(p, be.allocate(n, p.inFeatures(d) / adapter.groupSize()));
                    }
                }
            }
        }
    }

    public final int batch;
    public final int seqLen;
    public final boolean recompute;
    public final boolean training;
    public final AttentionShape attention;
    public final Tensor[] residual;       // L+1 x [N, H]; residual[l] enters layer l, residual[L] leaves the last
    private final LayerBuffers[] layers;  // L entries, or 1 shared with recompute
    public final Tensor tmpH;             // [N, H] o_proj / down_proj output before the residual add
    public final Tensor finalRstd;        // [N]
    public final Tensor finalOut;         // [N, H] model.norm output
    public final int logitRows;           // C: rows of logits held at once (N, or a chunk of whole sequences)
    public final Tensor logits;           // [C, V]
    public final Tensor headIn;           // [C, H] a chunk of finalOut (null when C = N)
    public final Tensor dHeadIn;          // [C, H] its gradient (null when C = N or not training)
    public final GradBuffers grads;       // null unless training
    public final Tensor dResidual;        // [N, H] gradient flowing down the residual stream
    public final Tensor dFinalOut;        // [N, H]
    public final Tensor dLogits;          // [C, V]
    private final long floats;

    /** A plan holding all logits at once (what evaluation needs to read them). */
    public ActivationPlan(LlamaModel model, QaloraConfig adapter, int batch, int seqLen, boolean training,
                          boolean recompute) {
        this(model, adapter, batch, seqLen, training, recompute, 0);
    }

    /**
     * @param logitChunkTokens when positive, lm_head, loss and (training) their backward run over chunks of whole
     *                         sequences of at most this many tokens (at least one sequence), so only
     *                         {@code [chunk, V]} logits are ever held (with a 32000 vocabulary the full logits and
     *                         their gradient are most of the activation memory); 0 holds them all (what reading
     *                         the logits needs)
     */
    public ActivationPlan(LlamaModel model, QaloraConfig adapter, int batch, int seqLen, boolean training,
                          boolean recompute, int logitChunkTokens) {
        LlamaDims d = model.dims();
        Backend be = model.backend();
        this.batch = batch;
        this.seqLen = seqLen;
        this.training = training;
        this.recompute = recompute;
        this.attention = new AttentionShape(batch, seqLen, d.heads(), d.kvHeads(), d.headDim());
        int n = attention.tokens();
        residual = new Tensor[d.layers() + 1];
        for (int l = 0; l <= d.layers(); l++) {
            residual[l] = be.allocate(n, d.hidden());
        }
        layers = new LayerBuffers[recompute ? 1 : d.layers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new LayerBuffers(be, d, attention, adapter, training);
        }
        tmpH = be.allocateActivation(n, d.hidden());
        finalRstd = be.allocate(n);
        finalOut = be.allocateActivation(n, d.hidden());
        logitRows = logitRows(batch, seqLen, training, logitChunkTokens);
        logits = be.allocateActivation(logitRows, d.vocab());
        headIn = logitRows < n ? be.allocateActivation(logitRows, d.hidden()) : null;
        dHeadIn = logitRows < n && training ? be.allocateActivation(logitRows, d.hidden()) : null;
        if (training) {
            grads = new GradBuffers(be, d, attention, adapter);
            dResidual = be.allocate(n, d.hidden());
            dFinalOut = be.allocateActivation(n, d.hidden());
            dLogits = be.allocateActivation(logitRows, d.vocab());
        } else {
            grads = null;
            dResidual = dFinalOut = dLogits = null;
        }
        this.floats = estimateFloats(d, adapter, batch, seqLen, training, recompute, logitChunkTokens);
    }

    /**
     * Activation memory of a plan on the CPU backend in float32 elements, without allocating it (multiply by 4 for
     * bytes). A GPU backend reports what it really holds ({@link Backend#deviceMemory()}).
     */
    public static long estimateFloats(LlamaDims d, QaloraConfig adapter, int batch, int seqLen, boolean training,
                                      boolean recompute, int logitChunkTokens) {
        long c = logitRows(batch, seqLen, training, logitChunkTokens);
        long n = (long) batch * seqLen;
        long qw = (long) d.heads() * d.headDim(), kw = (long) d.kvHeads() * d.headDim();
        long h = d.hidden(), f = d.intermediate();
        long perLayer = 2L * n + 3L * n * h + 2L * n * qw + 2L * n * kw + 3L * n * f
                + (long) batch * d.heads() * seqLen * seqLen;
        long loraPerLayer = 0, loraGrad = 0;
        if (adapter != null) {
            for (Projection p : adapter.orderedTargets()) {
                long g = p.inFeatures(d) / adapter.groupSize();
                loraPerLayer += n * g * ((copiesInput(adapter, training) ? 1 : 0) + (dropout(adapter, training) ? 1 : 0))
                        + n * adapter.rank();
                loraGrad += n * g * (copiesInput(adapter, true) ? 1 : 0) + n * adapter.rank();
            }
        }
        long layerSets = recompute ? 1 : d.layers();
        long total = (d.layers() + 1L) * n * h + layerSets * (perLayer + loraPerLayer) + 2L * n * h + n + c * d.vocab();
        if (c < n) {
            total += c * h * (training ? 2 : 1);
        }
        if (training) {
            total += 2L * n * h + 2L * n * qw + 2L * n * kw + 3L * n * f + loraGrad + 2L * n * h + c * d.vocab();
        }
        return total;
    }

    /** Rows of logits per chunk: whole sequences, as many as fit in {@code chunkTokens} (at least one). */
    static int logitRows(int batch, int seqLen, boolean training, int chunkTokens) {
        if (chunkTokens <= 0 || (long) batch * seqLen <= chunkTokens) {
            return batch * seqLen;
        }
        int sequences = Math.max(1, chunkTokens / seqLen);
        while (batch % sequences != 0) {
            sequences--; // chunks of equal size, so one set of chunk buffers serves them all
        }
        return sequences * seqLen;
    }

    /** Buffers holding layer {@code l}'s forward activations (the shared set under recompute). */
    public LayerBuffers layer(int l) { return layers[recompute ? 0 : l]; }

    public int tokens() { return attention.tokens(); }

    /** Activation memory in float32 elements (multiply by 4 for bytes). */
    public long floats() { return floats; }
}
