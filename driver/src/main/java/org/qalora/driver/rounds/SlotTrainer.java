package org.qalora.driver.rounds;

import org.qalora.driver.state.AdapterTensors;

/**
 * The seam between the Spark rounds and the model code: trains one slot of one round. An instance holds the
 * frozen base model (loaded once per executor and device by {@link SlotTrainerFactory#open}) and is reused by
 * every task of every round on that executor, so implementations must not keep per-task state between calls.
 * It must be deterministic: the same assignment and start state give bit-identical outcomes on any executor.
 */
public interface SlotTrainer {

    /**
     * Runs the slot's K local optimizer steps, starting from {@code start}. The caller hands {@code start} over (a
     * copy read for this call, which it does not use afterwards): a trainer may train in its arrays and return them,
     * so that an executor holds the adapter's weights and moments once while training, not once more per copy.
     *
     * @throws NonFiniteLossError when a step's loss is NaN or infinite
     */
    SlotOutcome train(SlotAssignment assignment, AdapterTensors start);

    /**
     * The held-out loss of the adapter {@code state} on part {@code part} of {@code parts} of the held-out batches
     * (a fixed split, so the parts' sums add up to the whole set's whatever executor runs them). Forward only.
     *
     * @throws IllegalStateException when the run has no held-out data
     */
    EvalOutcome evaluate(AdapterTensors state, int part, int parts);

    /** Sum of token losses and target tokens of one part of the held-out data. */
    record EvalOutcome(double lossSum, long targetTokens) {}

    /** The result of one slot: the state after K steps and what it trained on. */
    record SlotOutcome(AdapterTensors state, long targetTokens, double lossSum, int steps, double[] stepLosses) {}

    /** Thrown by a trainer when a step's loss is not finite; names the slot and step for the user. */
    final class NonFiniteLossError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        /** {@code what}: e.g. "loss NaN" or "gradient norm Infinity"; {@code localStep} is 0-based within the round. */
        public NonFiniteLossError(int round, int slot, long localStep, long globalStep, String what) {
            super("non-finite " + what + " in round " + round + ", slot " + slot + ", local step " + localStep
                    + " (global step " + globalStep + "); lower --lr, or check the data of that slot");
        }
    }
}
