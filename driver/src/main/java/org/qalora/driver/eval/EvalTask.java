package org.qalora.driver.eval;

import java.io.Serializable;

/**
 * What to compute for every item, shipped to executors with the work.
 *
 * @param loss         cross-entropy of the target given the prompt (teacher forcing)
 * @param generate     greedy generation from the prompt (exact match)
 * @param maxNewTokens generation limit
 * @param eosId        the token that ends a generation
 * @param choiceIds    token ids whose next-token logits are wanted (MMLU's A, B, C, D); null for none
 */
public record EvalTask(boolean loss, boolean generate, int maxNewTokens, int eosId, int[] choiceIds)
        implements Serializable {
    public EvalTask {
        if (!loss && !generate && choiceIds == null) {
            throw new IllegalArgumentException("an evaluation must compute something");
        }
        if (generate && maxNewTokens < 1) {
            throw new IllegalArgumentException("--max-new-tokens must be >= 1, got " + maxNewTokens);
        }
    }
}
