package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.qalora.datasets.tokenize.EncodedExample;

import java.io.Closeable;
import java.io.IOException;

/**
 * Writes one shard with parquet-hadoop directly (not through Spark's writer), so the file name is ours and the
 * bytes depend only on the rows: no UUIDs, no timestamps, no Spark version in the footer, and the footer's
 * encoding lists in one order in every process ({@link CanonicalFooter}). The footer's {@code created_by} names the
 * parquet-mr version, which is fixed by our build.
 */
final class ShardWriter implements Closeable {

    private final String name;
    private final HashingOutputFile file;
    private final ParquetWriter<Group> writer;
    private final SimpleGroupFactory groups = new SimpleGroupFactory(ShardSchema.SCHEMA);
    private final long firstRecord;
    private long records;

    ShardWriter(FileSystem fs, Path dir, String name, long firstRecord, Configuration conf) throws IOException {
        this.name = name;
        this.firstRecord = firstRecord;
        this.file = new HashingOutputFile(fs, new Path(dir, name));
        this.writer = ExampleParquetWriter.builder(file)
                .withConf(conf)
                .withType(ShardSchema.SCHEMA)
                .withCompressionCodec(CompressionCodecName.SNAPPY)
                .withWriteMode(ParquetFileWriter.Mode.OVERWRITE)   // a retried task attempt replaces its own file
                .withRowGroupSize(32L << 20)
                .build();
    }

    void write(EncodedExample ex, String recordId) throws IOException {
        Group g = groups.newGroup();
        Group ids = g.addGroup(ShardSchema.INPUT_IDS);
        for (int id : ex.inputIds()) {
            ids.addGroup("list").append("element", id);
        }
        Group labels = g.addGroup(ShardSchema.LABELS);
        for (int l : ex.labels()) {
            labels.addGroup("list").append("element", l);
        }
        g.append(ShardSchema.NUM_TOKENS, ex.numTokens());
        g.append(ShardSchema.NUM_TARGET_TOKENS, ex.numTargetTokens());
        g.append(ShardSchema.RECORD_ID, recordId);
        writer.write(g);
        records++;
    }

    long records() {
        return records;
    }

    @Override
    public void close() throws IOException {
        file.holdTail();   // the footer comes during close: let the file put its encodings in one order first
        writer.close();
    }

    /** The manifest entry; valid after {@link #close()}. */
    DatasetManifest.Shard entry() {
        return new DatasetManifest.Shard(name, firstRecord, records, file.bytes(), file.sha256());
    }
}
