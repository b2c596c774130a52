package org.qalora.driver.eval;

import java.io.Serializable;

/**
 * What was computed for one item; what its task did not ask for is zero or empty.
 *
 * @param lossSum      sum of the target tokens' cross-entropy (natural log)
 * @param targetTokens how many tokens that sum covers
 * @param generated    the greedy continuation of the prompt, without EOS
 * @param choiceLogits the next-token logits of the task's choice tokens after the prompt
 */
public record EvalOutcome(int index, double lossSum, int targetTokens, int[] generated, float[] choiceLogits)
        implements Serializable {}
