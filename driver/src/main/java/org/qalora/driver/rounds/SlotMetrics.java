package org.qalora.driver.rounds;

/**
 * The small result a round's task returns to the driver (the update itself goes to the checkpoint directory).
 * {@code lossSum} is the sum of token losses over the slot's K steps, so lossSum / targetTokens is its mean loss;
 * {@code updateSha256} is the SHA-256 of the update file the task wrote, which the driver checks before averaging.
 */
public record SlotMetrics(int slot, int attempt, String executorId, String device, long targetTokens, double lossSum,
                          long trainMillis, String updateSha256) implements java.io.Serializable {
    // Serializable as well as Kryo-registered: a notebook's SparkSession may run Spark's default Java serializer.
}
