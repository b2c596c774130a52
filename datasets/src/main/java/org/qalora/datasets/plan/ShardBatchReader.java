package org.qalora.datasets.plan;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.prepare.ShardSchema;
import org.qalora.datasets.tokenize.EncodedExample;

import java.io.IOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Turns a {@link PlannedBatch} into token arrays by reading the prepared shards (any Hadoop FileSystem). Shards are
 * loaded whole and kept in a small LRU cache: a slot's micro-batches come from records spread over the dataset, and
 * a shard (100k records by default) is read once instead of once per batch.
 */
public final class ShardBatchReader {

    private final String datasetDir;
    private final Configuration conf;
    private final DatasetManifest manifest;
    private final Map<String, int[][][]> cache;   // shard name -> {ids[row][], labels[row][]}

    public ShardBatchReader(String datasetDir, Configuration conf, DatasetManifest manifest, int cachedShards) {
        this.datasetDir = datasetDir;
        this.conf = conf;
        this.manifest = manifest;
        this.cache = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, int[][][]> eldest) {
                return size() > cachedShards;
            }
        };
    }

    public static ShardBatchReader open(String datasetDir, Configuration conf) throws IOException {
        return new ShardBatchReader(datasetDir, conf, DatasetManifest.read(datasetDir, conf), 4);
    }

    /** Thread-safe (the shard cache is shared), so one reader can serve every task of an executor. */
    public synchronized TokenBatch read(PlannedBatch b) throws IOException {
        int bs = b.batchSize();
        int t = b.seqLen();
        int[] ids = new int[bs * t];        // [B, T]
        int[] labels = new int[bs * t];     // [B, T]
        int[] lengths = new int[bs];        // [B]
        Arrays.fill(ids, manifest.padId());
        Arrays.fill(labels, EncodedExample.IGNORE);
        for (int r = 0; r < bs; r++) {
            long index = b.recordIndices()[r];
            DatasetManifest.Shard shard = manifest.shardOf(index);
            int[][][] rows = shard(shard);
            int row = Math.toIntExact(index - shard.firstRecord());
            int[] rid = rows[0][row];
            if (rid.length > t) {
                throw new IllegalStateException("record " + index + " has " + rid.length + " tokens but its planned "
                        + "micro-batch is " + t + " long: the plan was built for a different dataset");
            }
            System.arraycopy(rid, 0, ids, r * t, rid.length);
            System.arraycopy(rows[1][row], 0, labels, r * t, rid.length);
            lengths[r] = rid.length;
        }
        return new TokenBatch(bs, t, ids, labels, lengths);
    }

    private int[][][] shard(DatasetManifest.Shard s) throws IOException {
        int[][][] rows = cache.get(s.name());
        if (rows != null) {
            return rows;
        }
        int n = Math.toIntExact(s.records());
        int[][] ids = new int[n][];
        int[][] labels = new int[n][];
        Path p = new Path(datasetDir, s.name());
        try (ParquetReader<Group> reader = ParquetReader.builder(new GroupReadSupport(), p).withConf(conf).build()) {
            for (int i = 0; i < n; i++) {
                Group g = reader.read();
                if (g == null) {
                    throw new IOException(p + ": has " + i + " rows, manifest.json says " + n + "; run prepare again");
                }
                ids[i] = list(g, ShardSchema.INPUT_IDS);
                labels[i] = list(g, ShardSchema.LABELS);
            }
        }
        rows = new int[][][] {ids, labels};
        cache.put(s.name(), rows);
        return rows;
    }

    private static int[] list(Group g, String field) {
        Group list = g.getGroup(field, 0);
        int n = list.getFieldRepetitionCount("list");
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = list.getGroup("list", i).getInteger("element", 0);
        }
        return out;
    }
}
