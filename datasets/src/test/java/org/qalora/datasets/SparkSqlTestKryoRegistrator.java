package org.qalora.datasets;

import com.esotericsoftware.kryo.Kryo;
import org.apache.spark.serializer.KryoRegistrator;

import java.util.List;

/**
 * The Spark SQL classes that our tests' own Spark SQL calls ship through Kryo and that Spark 4.2 does not register
 * itself: the schema a Parquet read infers on the executors, and a DataFrame write's commit messages. Test-only:
 * the prepare job reads and writes with parquet-mr, never through Spark SQL, and needs only
 * {@link org.qalora.datasets.prepare.PrepareKryoRegistrator}.
 */
public final class SparkSqlTestKryoRegistrator implements KryoRegistrator {
    static final List<String> CLASSES = List.of(
            "org.apache.spark.sql.types.StructType",
            "org.apache.spark.sql.types.StructField",
            "[Lorg.apache.spark.sql.types.StructField;",
            "org.apache.spark.sql.types.ArrayType",
            "org.apache.spark.sql.types.IntegerType$",
            "org.apache.spark.sql.types.LongType$",
            "org.apache.spark.sql.types.StringType",
            "org.apache.spark.sql.types.Metadata");

    @Override
    public void registerClasses(Kryo kryo) {
        for (String name : CLASSES) {
            try {
                kryo.register(Class.forName(name, false, SparkSqlTestKryoRegistrator.class.getClassLoader()));
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException("Spark SQL class " + name + " is gone (a Spark upgrade?)", e);
            }
        }
    }
}
