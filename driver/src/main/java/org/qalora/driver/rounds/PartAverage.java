package org.qalora.driver.rounds;

/**
 * One part (weights, Adam m or v) of one key averaged over the slots, with what the disagreement measures take from
 * it on the way: {@code mean} the float32 average; for the weights only (else 0 / null) {@code meanSquare} = sum
 * xbar^2 and {@code squares[slot]} = sum w x^2, each one float64 chain over the elements in index order; and the
 * discordance samples at the key's sampled flat indices, each slot's value ({@code slotSamples[slot]}) and the
 * float64 mean's ({@code meanSamples}), or null where the key is in no measured module.
 */
record PartAverage(float[] mean, double meanSquare, double[] squares, double[][] slotSamples, double[] meanSamples) {}
