package org.qalora.driver.rounds;

/**
 * How the rounds run: {@code rounds} synchronous rounds of {@code slots} tasks, each doing {@code stepsPerRound}
 * local optimizer steps; {@code seed} feeds every derived seed; {@code configHash} identifies the run's
 * configuration in every manifest; the last {@code keepRounds} committed rounds are kept. With {@code evalEvery}
 * k > 0 the held-out loss is measured after every k-th round and after the last one (0: no held-out data). Each
 * round is averaged in {@code averagingParts} key ranges ({@link KeyRanges#count}; 0: by the state's size, at least
 * one per slot), which changes no bit of the result, by tasks of {@code averagingTaskCpus} CPUs each
 * ({@link AveragingStageResources}; 0: as many as a training task takes). Each slot's update file is written with
 * replication {@code updateReplication} (at most the file system's default; 0: the default): it is transient, read
 * once by the round's averaging and deleted by the next commit, so it needs fewer copies than the checkpoint.
 */
public record RoundSettings(int rounds, int stepsPerRound, int slots, long seed, String configHash, int keepRounds,
                            int evalEvery, int averagingParts, int averagingTaskCpus, int updateReplication) {
    /** The default CPUs of an averaging task ({@code train --averaging-task-cpus}). */
    public static final int DEFAULT_AVERAGING_TASK_CPUS = 1;
    /**
     * The default replication of the slots' update files ({@code train --update-replication}): two copies survive
     * the loss of one DataNode during the round, and at LLaMA-7B r64 (1.07 GB a slot) they write a third less than
     * HDFS's default three.
     */
    public static final int DEFAULT_UPDATE_REPLICATION = 2;

    public RoundSettings {
        if (rounds < 1 || stepsPerRound < 1 || slots < 1 || keepRounds < 1 || evalEvery < 0 || averagingParts < 0
                || averagingTaskCpus < 0 || updateReplication < 0) {
            throw new IllegalArgumentException("rounds, steps per round, slots and kept rounds must be >= 1, eval "
                    + "every, averaging parts, averaging task CPUs and update replication >= 0, got " + rounds + ", "
                    + stepsPerRound + ", " + slots + ", " + keepRounds + ", " + evalEvery + ", " + averagingParts
                    + ", " + averagingTaskCpus + ", " + updateReplication);
        }
    }

    /** With the averaging parts chosen by the state's size and the default CPUs per averaging task. */
    public RoundSettings(int rounds, int stepsPerRound, int slots, long seed, String configHash, int keepRounds,
                         int evalEvery) {
        this(rounds, stepsPerRound, slots, seed, configHash, keepRounds, evalEvery, 0, DEFAULT_AVERAGING_TASK_CPUS,
                DEFAULT_UPDATE_REPLICATION);
    }

    /** The same settings averaging each round in {@code parts} key ranges (0: by the state's size). */
    public RoundSettings withAveragingParts(int parts) {
        return new RoundSettings(rounds, stepsPerRound, slots, seed, configHash, keepRounds, evalEvery, parts,
                averagingTaskCpus, updateReplication);
    }

    /** The same settings writing the slots' update files with replication {@code replication} (0: the default). */
    public RoundSettings withUpdateReplication(int replication) {
        return new RoundSettings(rounds, stepsPerRound, slots, seed, configHash, keepRounds, evalEvery,
                averagingParts, averagingTaskCpus, replication);
    }

    /** True when round {@code round}'s adapter gets a held-out loss. */
    public boolean evaluates(int round) {
        return evalEvery > 0 && (round % evalEvery == 0 || round == rounds);
    }
}
