package org.qalora.datasets.plan;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.SparkTestSession;
import org.qalora.datasets.TestFiles;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.prepare.PrepareJob;
import org.qalora.datasets.prepare.PrepareSettings;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Plan + reader on the bundled Alpaca sample: batches hold exactly the shard rows, right-padded. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ShardBatchReaderTest {

    @TempDir
    Path dir;

    @Test
    void batchesAreShardRowsRightPadded() throws Exception {
        SparkSession spark = SparkTestSession.get();
        String out = dir.resolve("prepared").toString();
        PrepareJob.run(spark, PrepareSettings.defaults(List.of(TestFiles.root().resolve("samples/alpaca-sample.json")
                .toString()), TestFiles.root().resolve("samples/tokenizer/tokenizer.json").toString(), out)
                .withRecordsPerShard(16));
        Configuration conf = new Configuration();
        TrainingPlan plan = TrainingPlan.load(out, conf, new PlanSettings(3, 2, 2, 8, 0, 512));
        ShardBatchReader reader = ShardBatchReader.open(out, conf);

        // Expected rows, straight from Spark's own Parquet reader. The sample is one JSON array, so record index i
        // is array element i, whose record id ends in "[i]".
        List<Row> rows = spark.read().parquet(out + "/*.parquet").collectAsList().stream()
                .sorted((a, b) -> Integer.compare(elem(a.getString(4)), elem(b.getString(4)))).toList();
        assertEquals(60, rows.size());
        assertEquals(60, DatasetManifest.read(out, conf).records());

        int checked = 0;
        for (int slot = 0; slot < 2; slot++) {
            for (List<PlannedBatch> step : plan.stepsFor(1, slot)) {
                for (PlannedBatch b : step) {
                    TokenBatch t = reader.read(b);
                    assertEquals(b.batchSize() * b.seqLen(), t.inputIds().length);
                    for (int r = 0; r < b.batchSize(); r++) {
                        Row row = rows.get((int) b.recordIndices()[r]);
                        List<Integer> ids = row.getList(0);
                        List<Integer> labels = row.getList(1);
                        for (int i = 0; i < b.seqLen(); i++) {
                            int at = r * b.seqLen() + i;
                            if (i < ids.size()) {
                                assertEquals(ids.get(i), t.inputIds()[at]);
                                assertEquals(labels.get(i), t.labels()[at]);
                            } else {
                                assertEquals(0, t.inputIds()[at], "pad id");
                                assertEquals(-100, t.labels()[at], "padding is not trained on");
                            }
                        }
                        assertEquals(ids.size(), t.lengths()[r]);
                        checked++;
                    }
                }
            }
        }
        assertTrue(checked >= 8, "checked " + checked + " records");
    }

    private static int elem(String recordId) {
        return Integer.parseInt(recordId.substring(recordId.lastIndexOf('[') + 1, recordId.length() - 1));
    }
}
