package org.qalora.worker.train;

import java.util.List;
import java.util.Map;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;

/**
 * The loss of a base model plus adapter on held-out micro-batches: forward only (no dropout, no gradients), the
 * lm_head and loss in chunks of {@link LocalTrainer#LOGIT_CHUNK_TOKENS} tokens. Returns sums, so losses of several
 * parts add up to the loss of the whole held-out set: a mean over target tokens, not a mean of per-record means.
 * Deterministic: the same weights and batches give bit-identical sums.
 */
public final class HeldOutLoss {
    private HeldOutLoss() {}

    /**
     * @param lossSum      sum of token losses over every micro-batch, in batch order (double)
     * @param targetTokens target tokens those losses cover
     */
    public record Result(double lossSum, long targetTokens) implements java.io.Serializable {}

    /**
     * @param weights adapter weights by PEFT key (every tensor of {@code config}); null for the base model alone
     */
    public static Result evaluate(LlamaModel base, QaloraConfig config, Map<String, float[]> weights,
                                  List<MicroBatch> batches) {
        QaloraAdapter adapter = weights == null ? null : QaloraAdapter.create(base, config, weights, false);
        QaloraConfig planConfig = weights == null ? null : config;
        double lossSum = 0;
        long targets = 0;
        ActivationPlan plan = null;
        for (MicroBatch mb : batches) {
            if (plan == null || plan.batch != mb.batchSize() || plan.seqLen != mb.seqLen()) {
                plan = null; // let the old buffers go before allocating the new ones
                plan = new ActivationPlan(base, planConfig, mb.batchSize(), mb.seqLen(), false, false,
                        base.backend().logitChunkTokens());
            }
            int[] shifted = LlamaPass.shiftedTargets(mb.labels(), mb.batchSize(), mb.seqLen());
            LlamaPass.forward(base, adapter, plan, mb.inputIds(), 0, null);
            lossSum += LlamaPass.loss(base, plan, shifted);                 // sum of token losses of the batch
            targets += LlamaPass.countTargets(shifted);
        }
        return new Result(lossSum, targets);
    }
}
