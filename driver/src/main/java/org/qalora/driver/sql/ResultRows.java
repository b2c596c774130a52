package org.qalora.driver.sql;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.read.LocalScan;
import org.apache.spark.sql.types.StructType;

/** A procedure's result: rows already on the driver (Spark 4.2 takes only a LocalScan as procedure output). */
record ResultRows(StructType readSchema, InternalRow[] rows) implements LocalScan {
    @Override
    public String description() {
        return rows.length + " rows of " + readSchema.simpleString();
    }
}
