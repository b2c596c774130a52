package org.qalora.datasets;

import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.prepare.PrepareKryoRegistrator;

/**
 * One small local Spark for the module's tests (local[2] is all prepare needs; no UI, few shuffle partitions), with
 * Kryo and registration required, as production runs: a class shipped through Spark's serializer (a broadcast, an
 * RDD element, a task result) that nobody registered fails a test here instead of a job there.
 */
public final class SparkTestSession {
    private SparkTestSession() {}

    public static synchronized SparkSession get() {
        return SparkSession.builder()
                .master("local[2]")
                .appName("qalora-datasets-test")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "2")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
                .config("spark.kryo.registrationRequired", "true")
                .config("spark.kryo.registrator", PrepareKryoRegistrator.class.getName() + ","
                        + SparkSqlTestKryoRegistrator.class.getName())
                .getOrCreate();
    }
}
