package org.qalora.driver.rounds;

/**
 * How the rounds run: {@code rounds} synchronous rounds of {@code slots} tasks, each doing {@code stepsPerRound}
 * local optimizer steps; {@code seed} feeds every derived seed; {@code configHash} identifies the run's
 * configuration in every manifest; the last {@code keepRounds} committed rounds are kept. With {@code evalEvery}
 * k > 0 the held-out loss is measured after every k-th round and after the last one (0: no held-out data).
 */
public record RoundSettings(int rounds, int stepsPerRound, int slots, long seed, String configHash, int keepRounds,
                            int evalEvery) {
    public RoundSettings {
        if (rounds < 1 || stepsPerRound < 1 || slots < 1 || keepRounds < 1 || evalEvery < 0) {
            throw new IllegalArgumentException("rounds, steps per round, slots and kept rounds must be >= 1 and eval "
                    + "every >= 0, got " + rounds + ", " + stepsPerRound + ", " + slots + ", " + keepRounds + ", "
                    + evalEvery);
        }
    }

    /** True when round {@code round}'s adapter gets a held-out loss. */
    public boolean evaluates(int round) {
        return evalEvery > 0 && (round % evalEvery == 0 || round == rounds);
    }
}
