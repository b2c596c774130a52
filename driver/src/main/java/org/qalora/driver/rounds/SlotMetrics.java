package org.qalora.driver.rounds;

/**
 * The small result a round's task returns to the driver (the update itself goes to the checkpoint directory).
 * {@code lossSum} is the sum of token losses over the slot's K steps, so lossSum / targetTokens is its mean loss.
 */
public record SlotMetrics(int round, int slot, int attempt, String executorId, String device, long targetTokens,
                          double lossSum, int steps, double[] stepLosses, long loadMillis, long trainMillis,
                          long writeMillis, String updateSha256) {
}
