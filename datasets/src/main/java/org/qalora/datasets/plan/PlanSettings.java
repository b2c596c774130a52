package org.qalora.datasets.plan;

import java.io.Serializable;

/**
 * How a prepared dataset is cut into rounds.
 *
 * @param seed                   shuffles (per epoch) derive from it
 * @param slots                  parallel trainers per round (Spark tasks), each gets its own micro-batches
 * @param stepsPerRound          K: optimizer steps each slot takes per round
 * @param microBatchesPerStep    M: gradient-accumulation micro-batches per step
 * @param maxTokensPerMicroBatch B*T budget of one micro-batch, padding included
 */
public record PlanSettings(long seed, int slots, int stepsPerRound, int microBatchesPerStep,
                           int maxTokensPerMicroBatch) implements Serializable {
    public PlanSettings {
        if (slots < 1 || stepsPerRound < 1 || microBatchesPerStep < 1 || maxTokensPerMicroBatch < 1) {
            throw new IllegalArgumentException("slots, stepsPerRound, microBatchesPerStep and maxTokensPerMicroBatch "
                    + "must all be >= 1, got " + this);
        }
    }

    /** Micro-batches one round consumes over all slots. */
    public int microBatchesPerRound() {
        return Math.multiplyExact(Math.multiplyExact(slots, stepsPerRound), microBatchesPerStep);
    }
}
