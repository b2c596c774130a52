package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.SparkTestSession;
import org.qalora.datasets.TestFiles;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** prepare from and to a real HDFS (MiniDFSCluster), twice: the two output directories are byte-identical. */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class PrepareHdfsTest {

    @TempDir
    static java.nio.file.Path base;

    static MiniDFSCluster hdfs;

    @BeforeAll
    static void startHdfs() throws IOException {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.resolve("hdfs").toString());
        conf.setInt("dfs.replication", 1);
        hdfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        hdfs.waitActive();
    }

    @AfterAll
    static void stopHdfs() {
        if (hdfs != null) {
            hdfs.shutdown();
        }
    }

    @Test
    void samplesFromHdfsTwiceGiveIdenticalBytes() throws Exception {
        FileSystem fs = hdfs.getFileSystem();
        String uri = fs.getUri().toString();
        fs.copyFromLocalFile(new Path(TestFiles.root().resolve("samples/alpaca-sample.json").toString()),
                new Path("/data/alpaca-sample.json"));
        fs.copyFromLocalFile(new Path(TestFiles.root().resolve("samples/flan-sample.jsonl").toString()),
                new Path("/data/flan-sample.jsonl"));
        fs.copyFromLocalFile(new Path(TestFiles.root().resolve("samples/tokenizer/tokenizer.json").toString()),
                new Path("/tok/tokenizer.json"));
        fs.copyFromLocalFile(new Path(TestFiles.root().resolve("samples/tokenizer/tokenizer_config.json").toString()),
                new Path("/tok/tokenizer_config.json"));

        SparkSession spark = SparkTestSession.get();
        PrepareSettings s = PrepareSettings.defaults(List.of(uri + "/data"), uri + "/tok/tokenizer.json",
                uri + "/prepared/one").withRecordsPerShard(25);
        DatasetManifest first = PrepareJob.run(spark, s);
        DatasetManifest second = PrepareJob.run(spark, s.withOut(uri + "/prepared/two"));

        assertEquals(100, first.records());
        assertEquals(List.of("alpaca", "flan"), first.inputs().stream().map(DatasetManifest.Input::format).toList());
        assertEquals(first, second);
        Map<String, byte[]> one = files(fs, new Path("/prepared/one"));
        Map<String, byte[]> two = files(fs, new Path("/prepared/two"));
        assertEquals(one.keySet(), two.keySet());
        assertTrue(one.keySet().containsAll(List.of("manifest.json", "lengths.bin", "part-00000-0000-0000.parquet",
                "part-00000-0000-0002.parquet", "part-00001-0000-0001.parquet")), one.keySet().toString());
        for (String name : one.keySet()) {
            assertArrayEquals(one.get(name), two.get(name), name + " differs between two identical runs");
        }
        // The manifest's checksums are those of the bytes on HDFS.
        for (DatasetManifest.Shard sh : first.shards()) {
            assertEquals(sh.sha256(), DatasetManifest.sha256(one.get(sh.name())), sh.name());
            assertEquals(sh.bytes(), one.get(sh.name()).length);
        }
        assertTrue(Arrays.stream(fs.listStatus(new Path("/prepared"))).map(st -> st.getPath().getName())
                .allMatch(n -> n.equals("one") || n.equals("two")), "no temporary directory left");
    }

    private static Map<String, byte[]> files(FileSystem fs, Path dir) throws IOException {
        Map<String, byte[]> out = new TreeMap<>();
        for (FileStatus st : fs.listStatus(dir)) {
            try (FSDataInputStream in = fs.open(st.getPath())) {
                out.put(st.getPath().getName(), in.readAllBytes());
            }
        }
        return out;
    }
}
