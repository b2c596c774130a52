package org.qalora.driver.rounds;

/**
 * What one committed round reports: one line of {@code metrics.jsonl}, the {@code metrics} of the round's
 * manifest, and the progress line. {@code loss} is the token-weighted mean training loss over every slot's steps;
 * {@code slotDevices} says which executor and device trained each slot (e.g. {@code 1/gpu:0}). {@code evalLoss} is
 * the held-out loss of the round's averaged adapter (sum of token losses over every held-out record / their
 * {@code evalTargetTokens}), null when the round was not evaluated; it is measured after the commit, so the
 * manifest's copy of these metrics lacks it and metrics.jsonl has it.
 */
public record RoundMetrics(int round, long globalStep, int slots, double loss, double[] slotLosses, long targetTokens,
                           double tokensPerSecond, double roundSeconds, long slowestSlotTrainMillis,
                           long averagingMillis, long commitMillis, double slotSpread, double maxFactorDiscordance,
                           double meanFactorDiscordance, int taskAttempts, String[] slotDevices, Double evalLoss,
                           long evalTargetTokens, long evalMillis) {

    /** The same metrics with the commit's duration. */
    public RoundMetrics withCommitMillis(long millis) {
        return new RoundMetrics(round, globalStep, slots, loss, slotLosses, targetTokens, tokensPerSecond, roundSeconds,
                slowestSlotTrainMillis, averagingMillis, millis, slotSpread, maxFactorDiscordance, meanFactorDiscordance,
                taskAttempts, slotDevices, evalLoss, evalTargetTokens, evalMillis);
    }

    /** The same metrics with the held-out loss of the round's adapter. */
    public RoundMetrics withEval(double evalLoss, long evalTargetTokens, long evalMillis) {
        return new RoundMetrics(round, globalStep, slots, loss, slotLosses, targetTokens, tokensPerSecond, roundSeconds,
                slowestSlotTrainMillis, averagingMillis, commitMillis, slotSpread, maxFactorDiscordance,
                meanFactorDiscordance, taskAttempts, slotDevices, evalLoss, evalTargetTokens, evalMillis);
    }

    /** The one-line human summary printed in local mode and used as the next job's Spark UI description. */
    public String progressLine(int totalRounds) {
        String line = String.format(java.util.Locale.ROOT,
                "round %d/%d: loss %.4f, %d target tokens (%.0f tok/s), averaging %d ms, slot spread %.3g, "
                        + "A/B discordance max %.3g",
                round, totalRounds, loss, targetTokens, tokensPerSecond, averagingMillis, slotSpread, maxFactorDiscordance);
        if (evalLoss != null) {
            line += String.format(java.util.Locale.ROOT, ", held-out loss %.4f (%d target tokens, %d ms)", evalLoss,
                    evalTargetTokens, evalMillis);
        }
        return line;
    }
}
