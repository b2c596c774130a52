package org.qalora.driver.rounds;

/**
 * What one held-out evaluation task returns: the sum of token losses and the target tokens of its part of the
 * held-out batches ({@code part} of {@code parts}), where it ran, and how long it took.
 */
public record EvalMetrics(int part, String executorId, String device, long targetTokens, double lossSum, long millis)
        implements java.io.Serializable {
    // Serializable as well as Kryo-registered: a notebook's SparkSession may run Spark's default Java serializer.
}
