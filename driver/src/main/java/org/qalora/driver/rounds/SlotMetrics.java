package org.qalora.driver.rounds;

/**
 * The small result a round's task returns to the driver (the update itself goes to the checkpoint directory).
 * {@code lossSum} is the sum of token losses over the slot's K steps, so lossSum / targetTokens is its mean loss;
 * {@code update} holds the CRC32Cs of the update file's header and of each of its tensors as the task wrote them,
 * which the averaging tasks check as they read.
 */
public record SlotMetrics(int slot, int attempt, String executorId, String device, long targetTokens, double lossSum,
                          long trainMillis, org.qalora.driver.state.SegmentDigests update)
        implements java.io.Serializable {
    // Serializable as well as Kryo-registered: a notebook's SparkSession may run Spark's default Java serializer.
}
