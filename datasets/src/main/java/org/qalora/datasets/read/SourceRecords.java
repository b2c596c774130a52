package org.qalora.datasets.read;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;

/**
 * The readers as a Spark Dataset: one partition per file, each streamed by its task (no file is loaded whole).
 * Columns: {@code record_id}, {@code instruction} (null for FLAN), {@code input}, {@code output}. A bad record
 * fails the job with its file, line and reason, unless {@code skipBadRecords}.
 */
public final class SourceRecords {
    private SourceRecords() {}

    public static final StructType SCHEMA = new StructType()
            .add("record_id", DataTypes.StringType, false)
            .add("instruction", DataTypes.StringType, true)
            .add("input", DataTypes.StringType, false)
            .add("output", DataTypes.StringType, false);

    /** @param files input files (already expanded; see {@code prepare} for directories and globs) */
    public static Dataset<Row> dataset(SparkSession spark, List<String> files, RecordFormat format,
                                       RecordValidator.Limits limits, boolean skipBadRecords) {
        // Hadoop settings travel as plain strings: Configuration itself is not Serializable.
        Map<String, String> conf = new java.util.HashMap<>();
        spark.sparkContext().hadoopConfiguration().forEach(e -> conf.put(e.getKey(), e.getValue()));
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        List<String> copy = List.copyOf(files);
        var rows = jsc.parallelize(copy, Math.max(1, copy.size())).flatMap(file -> {
            Configuration c = new Configuration(false);
            conf.forEach(c::set);
            return new RowIterator(RecordReaders.open(file, c, format, limits), skipBadRecords);
        });
        return spark.createDataFrame(rows, SCHEMA);
    }

    /** Pulls records from the reader as Spark asks for rows: one record in memory at a time. */
    private static final class RowIterator implements Iterator<Row> {
        private final RecordReader reader;
        private final boolean skipBadRecords;
        private Row next;
        private boolean done;

        RowIterator(RecordReader reader, boolean skipBadRecords) {
            this.reader = reader;
            this.skipBadRecords = skipBadRecords;
        }

        @Override
        public boolean hasNext() {
            if (next == null && !done) {
                advance();
            }
            return next != null;
        }

        @Override
        public Row next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            Row r = next;
            next = null;
            return r;
        }

        private void advance() {
            try {
                ReadResult x;
                while ((x = reader.next()) != null) {
                    if (x.isOk()) {
                        SourceRecord s = x.record();
                        next = RowFactory.create(s.recordId(), s.instruction(), s.input(), s.output());
                        return;
                    }
                    if (!skipBadRecords) {
                        reader.close();
                        throw new IllegalArgumentException(x.bad().message());
                    }
                }
                done = true;
                reader.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
        }
    }
}
