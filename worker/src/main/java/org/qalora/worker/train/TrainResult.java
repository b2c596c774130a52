package org.qalora.worker.train;

/**
 * What {@link LocalTrainer#run} returns.
 *
 * @param lossSum      sum of the per-token losses over all micro-batches of all steps (before each update)
 * @param targetTokens number of target tokens those losses cover
 * @param steps        optimizer steps taken
 * @param stepLosses   mean loss of each step (its loss sum / its target tokens)
 */
public record TrainResult(AdapterState state, double lossSum, long targetTokens, int steps, double[] stepLosses)
        implements java.io.Serializable {}
