package org.qalora.datasets.plan;

import java.io.Serializable;

/**
 * How a prepared dataset is cut into rounds, steps and micro-batches.
 *
 * @param seed                   shuffles (per epoch) derive from it
 * @param slots                  parallel trainers per round (Spark tasks), each gets its own steps
 * @param stepsPerRound          K: optimizer steps each slot takes per round
 * @param batchSize              N: sequences (records) per optimizer step
 * @param groupByLength          0: off (each step is N records of the shuffled order); else the mega-batch size:
 *                               the shuffled order is cut into mega-batches of this many records, each sorted by
 *                               length, so a step holds records of similar length (must exceed N to change anything)
 * @param maxTokensPerMicroBatch B*T budget of one micro-batch, padding included: a step's records are split into as
 *                               many micro-batches as this needs (gradient accumulation; the step's gradient does
 *                               not depend on the split except for float rounding)
 */
public record PlanSettings(long seed, int slots, int stepsPerRound, int batchSize, int groupByLength,
                           int maxTokensPerMicroBatch) implements Serializable {
    public PlanSettings {
        if (slots < 1 || stepsPerRound < 1 || batchSize < 1 || maxTokensPerMicroBatch < 1) {
            throw new IllegalArgumentException("slots, stepsPerRound, batchSize and maxTokensPerMicroBatch must all "
                    + "be >= 1, got " + slots + ", " + stepsPerRound + ", " + batchSize + ", " + maxTokensPerMicroBatch);
        }
        if (groupByLength < 0) {
            throw new IllegalArgumentException("group-by-length must be 0 (off) or a mega-batch size, got " + groupByLength);
        }
        if (groupByLength != 0 && groupByLength <= batchSize) {
            throw new IllegalArgumentException("group-by-length " + groupByLength + " is not larger than batch-size "
                    + batchSize + ": a mega-batch of at most one step's records groups nothing (the step is the same "
                    + "set of records either way); use off, or a mega-batch of several steps (HF uses 50 x batch size)");
        }
    }

    /** Steps one round consumes over all slots. */
    public int stepsPerRoundAllSlots() {
        return Math.multiplyExact(slots, stepsPerRound);
    }

    /** Records one round consumes over all slots. */
    public long recordsPerRound() {
        return (long) stepsPerRoundAllSlots() * batchSize;
    }
}
