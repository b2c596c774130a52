package org.qalora.driver.api;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.pipeline.TrainPipeline;

/**
 * What a {@link QaloraTraining} published: the merged, still-quantized model's directory ({@code v-...} under the
 * output, which LATEST names), and the per-round metrics as a DataFrame (round, loss, tokensPerSecond,
 * roundSeconds, evalLoss, ... as in {@code checkpoints/metrics.jsonl}), ordered by round.
 */
public record TrainingResult(String published, String output, Dataset<Row> metrics) {

    static TrainingResult of(SparkSession spark, TrainPipeline.Outcome outcome) {
        org.apache.hadoop.fs.Path published = outcome.published();
        org.apache.hadoop.fs.Path output = published.getParent();
        String metricsFile = new org.apache.hadoop.fs.Path(new org.apache.hadoop.fs.Path(output, "checkpoints"),
                CheckpointStore.METRICS).toString();
        Dataset<Row> metrics = spark.read().json(metricsFile).orderBy("round");
        return new TrainingResult(published.toString(), output.toString(), metrics);
    }
}
