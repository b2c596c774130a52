package org.qalora.driver.rounds;

/**
 * How the rounds run: {@code rounds} synchronous rounds of {@code slots} tasks, each doing {@code stepsPerRound}
 * local optimizer steps; {@code seed} feeds every derived seed; {@code configHash} identifies the run's
 * configuration in every manifest; the last {@code keepRounds} committed rounds are kept.
 */
public record RoundSettings(int rounds, int stepsPerRound, int slots, long seed, String configHash, int keepRounds) {
    public RoundSettings {
        if (rounds < 1 || stepsPerRound < 1 || slots < 1 || keepRounds < 1) {
            throw new IllegalArgumentException("rounds, steps per round, slots and kept rounds must be >= 1, got "
                    + rounds + ", " + stepsPerRound + ", " + slots + ", " + keepRounds);
        }
    }
}
