package org.qalora.worker.model;

import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.backend.Backend;

/**
 * A whole-model pass: embeddings, decoder layers, final norm, lm_head, causal-LM loss, and the backward of all of
 * it into the adapter gradients. The frozen base gets no gradient buffers at all.
 */
public final class LlamaPass {
    private LlamaPass() {}

    /**
     * Runs the forward pass; the logits {@code [B*T, V]} are left in {@code plan.logits} (with a chunked plan the
     * pass stops at the final norm, and {@link #loss} / {@link #lossAndBackward} compute the logits chunk by chunk).
     *
     * @param ids      {@code [B, T]} row-major token ids
     * @param passSeed seeds the adapter dropout masks of this pass (ignored when not training)
     * @param observer sees every projection input, may be null
     */
    public static void forward(LlamaModel model, QaloraAdapter adapter, ActivationPlan plan, int[] ids, long passSeed,
                               ActivationObserver observer) {
        if (ids.length != plan.tokens()) {
            throw new IllegalArgumentException("batch has " + ids.length + " token ids, the plan is for "
                    + plan.batch + " x " + plan.seqLen);
        }
        Backend be = model.backend();
        LlamaDims d = model.dims();
        be.embedding(ids, model.embedding(), plan.residual[0]);                        // x[N,H]
        for (int l = 0; l < d.layers(); l++) {
            DecoderLayerPass.forward(model, l, adapter, plan, plan.residual[l], plan.residual[l + 1], passSeed, observer);
        }
        be.rmsNorm(plan.residual[d.layers()], model.finalNorm(), d.rmsEps(), plan.finalOut, plan.finalRstd); // [N,H]
        if (!chunked(plan)) {
            be.linear(plan.finalOut, model.lmHead(), plan.logits);                     // logits[N,V]
        }
    }

    private static boolean chunked(ActivationPlan plan) {
        return plan.logitRows < plan.tokens();
    }

    /**
     * lm_head, cross-entropy and (with {@code backward}) the lm_head input gradient into {@code plan.dFinalOut},
     * one chunk of {@code plan.logitRows} rows at a time. Returns the sum of token losses.
     */
    private static double head(LlamaModel model, ActivationPlan plan, int[] targets, float gradScale, boolean backward) {
        Backend be = model.backend();
        if (!chunked(plan)) {
            double sum = be.crossEntropy(plan.logits, targets, gradScale, backward ? plan.dLogits : null);
            if (backward) {
                be.linearBackwardInput(plan.dLogits, model.lmHead(), plan.dFinalOut, false); // dFinal[N,H]
            }
            return sum;
        }
        int c = plan.logitRows;
        double sum = 0;
        for (int r = 0; r < plan.tokens(); r += c) {
            be.copyRows(plan.finalOut, r, plan.headIn, 0, c);                         // [C,H]
            be.linear(plan.headIn, model.lmHead(), plan.logits);                       // logits[C,V]
            int[] part = java.util.Arrays.copyOfRange(targets, r, r + c);
            sum += be.crossEntropy(plan.logits, part, gradScale, backward ? plan.dLogits : null);
            if (backward) {
                be.linearBackwardInput(plan.dLogits, model.lmHead(), plan.dHeadIn, false); // [C,H]
                be.copyRows(plan.dHeadIn, 0, plan.dFinalOut, r, c);
            }
        }
        return sum;
    }

    /**
     * Cross-entropy of the logits of the last {@link #forward} against shifted targets, then the full backward:
     * adapter gradients receive {@code gradScale * d(sum of token losses)}. Returns the sum of token losses.
     */
    public static double lossAndBackward(LlamaModel model, QaloraAdapter adapter, ActivationPlan plan, int[] targets,
                                         float gradScale, long passSeed) {
        if (plan.grads == null) {
            throw new IllegalStateException("the activation plan was made for inference; make it with training = true");
        }
        Backend be = model.backend();
        LlamaDims d = model.dims();
        requireTargets(plan, targets);
        double lossSum = head(model, plan, targets, gradScale, true);                  // dFinal[N,H]
        be.zero(plan.dResidual);
        be.rmsNormBackward(plan.dFinalOut, plan.residual[d.layers()], model.finalNorm(), plan.finalRstd,
                plan.dResidual);                                                        // dRes[N,H]
        for (int l = d.layers() - 1; l >= 0; l--) {
            if (plan.recompute && l < d.layers() - 1) {
                // Only the residual input was kept: rebuild this layer's activations first. (The shared buffers
                // still hold the last layer's activations from the forward pass, so it needs no rebuild.)
                DecoderLayerPass.forward(model, l, adapter, plan, plan.residual[l], plan.residual[l + 1], passSeed, null);
            }
            DecoderLayerPass.backward(model, l, adapter, plan, plan.residual[l], plan.dResidual);
        }
        // The embedding table is frozen: the gradient stops here.
        return lossSum;
    }

    /** Sum of token losses of the last forward (no gradients). */
    public static double loss(LlamaModel model, ActivationPlan plan, int[] targets) {
        requireTargets(plan, targets);
        return head(model, plan, targets, 0f, false);
    }

    private static void requireTargets(ActivationPlan plan, int[] targets) {
        if (targets.length != plan.tokens()) {
            throw new IllegalArgumentException("targets have " + targets.length + " entries, the plan is for "
                    + plan.batch + " x " + plan.seqLen);
        }
    }

    /**
     * HF causal-LM shift: the logits at position t predict {@code labels[t + 1]}; the last position of each row
     * predicts nothing. Returns {@code targets [B*T]} with -100 where nothing is predicted.
     */
    public static int[] shiftedTargets(int[] labels, int batch, int seqLen) {
        if (labels.length != batch * seqLen) {
            throw new IllegalArgumentException("labels have " + labels.length + " entries, expected " + batch + " x " + seqLen);
        }
        int[] targets = new int[labels.length];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < seqLen; t++) {
                targets[b * seqLen + t] = t + 1 < seqLen ? labels[b * seqLen + t + 1] : -100;
            }
        }
        return targets;
    }

    /** Number of positions that carry a target (labels != -100 after the shift). */
    public static long countTargets(int[] targets) {
        long n = 0;
        for (int t : targets) {
            if (t != -100) {
                n++;
            }
        }
        return n;
    }

    /** The logits of the last forward as a host array {@code [B*T, V]}. */
    public static float[] logits(LlamaModel model, ActivationPlan plan) {
        if (chunked(plan)) {
            throw new IllegalStateException("this plan computes logits in chunks of " + plan.logitRows
                    + " rows and never holds them all: make the plan with logitChunkTokens = 0 to read them");
        }
        return model.backend().download(plan.logits);
    }

}
