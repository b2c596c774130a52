package org.qalora.driver.eval;

import java.util.ArrayList;
import java.util.List;
import org.qalora.worker.generate.Generator;
import org.qalora.worker.generate.InferenceModel;
import org.qalora.worker.generate.Sampling;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.CachedPass;
import org.qalora.worker.model.LlamaPass;

/**
 * Scores one batch of items on a loaded model: the same code runs in the local loop and in every Spark task, on
 * the same batches (see {@link EvalRunner}), so the two give identical numbers.
 */
final class ItemScorer {
    private ItemScorer() {}

    static EvalOutcome[] score(InferenceModel m, EvalTask task, EvalItem[] batch) {
        List<int[]> generated = null;
        if (task.generate()) {
            List<int[]> prompts = new ArrayList<>();
            for (EvalItem item : batch) {
                prompts.add(item.prompt());
            }
            generated = m.generator().generate(prompts, new Generator.Settings(task.maxNewTokens(), task.eosId(),
                    Sampling.GREEDY, batch.length), null);
        }
        EvalOutcome[] out = new EvalOutcome[batch.length];
        for (int i = 0; i < batch.length; i++) {
            EvalItem item = batch[i];
            double lossSum = 0;
            int tokens = 0;
            if (task.loss()) {
                lossSum = lossSum(m, item);
                tokens = item.target().length;
            }
            float[] choices = task.choiceIds() == null ? new float[0] : choiceLogits(m, item, task.choiceIds());
            out[i] = new EvalOutcome(item.index(), lossSum, tokens,
                    generated == null ? new int[0] : generated.get(i), choices);
        }
        return out;
    }

    /**
     * The summed cross-entropy of the target tokens: the training forward over prompt + target, the logits at t
     * predicting token t + 1, the prompt's positions masked (exactly the training loss of the record).
     */
    static double lossSum(InferenceModel m, EvalItem item) {
        int s = item.prompt().length, t = s + item.target().length;
        if (item.target().length == 0) {
            throw new IllegalArgumentException("item " + item.index() + " has no target tokens to take a loss over");
        }
        int[] ids = new int[t];                                                        // [T]
        int[] labels = new int[t];                                                     // [T]
        System.arraycopy(item.prompt(), 0, ids, 0, s);
        System.arraycopy(item.target(), 0, ids, s, t - s);
        java.util.Arrays.fill(labels, 0, s, -100);
        System.arraycopy(item.target(), 0, labels, s, t - s);
        ActivationPlan plan = new ActivationPlan(m.model(), m.adapter() == null ? null : m.adapter().config(), 1, t,
                false, false);
        LlamaPass.forward(m.model(), m.adapter(), plan, ids, 0, null);
        return LlamaPass.loss(m.model(), plan, LlamaPass.shiftedTargets(labels, 1, t));
    }

    /** The next-token logits of {@code choiceIds} after the whole prompt (one prefill, lm_head on the last row). */
    static float[] choiceLogits(InferenceModel m, EvalItem item, int[] choiceIds) {
        float[] logits = new CachedPass(m.model(), m.adapter(), null).prefill(0, item.prompt()); // [V]
        float[] out = new float[choiceIds.length];
        for (int c = 0; c < choiceIds.length; c++) {
            out[c] = logits[choiceIds[c]];
        }
        return out;
    }
}
