package org.qalora.datasets;

import org.apache.spark.sql.SparkSession;

/** One small local Spark for the module's tests (local[2] is all prepare needs; no UI, few shuffle partitions). */
public final class SparkTestSession {
    private SparkTestSession() {}

    public static synchronized SparkSession get() {
        return SparkSession.builder()
                .master("local[2]")
                .appName("qalora-datasets-test")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "2")
                .config("spark.driver.host", "127.0.0.1")
                .getOrCreate();
    }
}
