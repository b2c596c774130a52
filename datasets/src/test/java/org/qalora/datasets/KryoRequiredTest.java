package org.qalora.datasets;

import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.Serializable;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The module's Spark tests run with Kryo and registration required, and that setting does refuse a stranger. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KryoRequiredTest {

    record Unregistered(int x) implements Serializable {}

    @Test
    void sessionRequiresRegistration() {
        SparkSession spark = SparkTestSession.get();
        assertEquals("org.apache.spark.serializer.KryoSerializer", spark.conf().get("spark.serializer"));
        assertEquals("true", spark.conf().get("spark.kryo.registrationRequired"));
        assertTrue(spark.conf().get("spark.kryo.registrator").contains("PrepareKryoRegistrator"));
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        var e = assertThrows(Exception.class, () -> jsc.parallelize(List.of(1, 2), 2).map(Unregistered::new).collect());
        assertTrue(String.valueOf(e.getMessage()).contains("Class is not registered"), e.getMessage());
    }
}
