package org.qalora.driver.rounds;

/**
 * What one committed round reports: one line of {@code metrics.jsonl}, the {@code metrics} of the round's
 * manifest, and the progress line. {@code loss} is the token-weighted mean training loss over every slot's steps;
 * {@code slotDevices} says which executor and device trained each slot (e.g. {@code 1/gpu:0}).
 */
public record RoundMetrics(int round, long globalStep, int slots, double loss, double[] slotLosses, long targetTokens,
                           double tokensPerSecond, double roundSeconds, long slowestSlotTrainMillis,
                           long averagingMillis, long commitMillis, double slotSpread, double maxFactorDiscordance,
                           double meanFactorDiscordance, int taskAttempts, String[] slotDevices) {

    /** The one-line human summary printed in local mode and used as the next job's Spark UI description. */
    public String progressLine(int totalRounds) {
        return String.format(java.util.Locale.ROOT,
                "round %d/%d: loss %.4f, %d target tokens (%.0f tok/s), averaging %d ms, slot spread %.3g, "
                        + "A/B discordance max %.3g",
                round, totalRounds, loss, targetTokens, tokensPerSecond, averagingMillis, slotSpread, maxFactorDiscordance);
    }
}
