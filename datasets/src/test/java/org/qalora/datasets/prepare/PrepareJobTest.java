package org.qalora.datasets.prepare;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.SparkTestSession;
import org.qalora.datasets.TestFiles;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.tokenize.EncodedExample;
import org.qalora.datasets.tokenize.ExampleEncoder;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PrepareJobTest {

    @TempDir
    Path dir;

    private final SparkSession spark = SparkTestSession.get();

    @Test
    void alpacaJsonlAndArrayAreTokenizedAsTheEncoderDoes() throws Exception {
        Path jsonl = PrepareFixtures.write(dir, "a.jsonl", PrepareFixtures.lines(List.of(
                PrepareFixtures.good(1), PrepareFixtures.goodWithInput(2), PrepareFixtures.good(3))));
        Path array = PrepareFixtures.write(dir, "b.json", "[\n" + PrepareFixtures.goodWithInput(4) + ",\n"
                + PrepareFixtures.good(5) + "\n]\n");
        String out = dir.resolve("out").toString();
        DatasetManifest m = PrepareJob.run(spark, PrepareSettings.defaults(
                List.of(jsonl.toString(), array.toString()), PrepareFixtures.tokenizer(), out).withRecordsPerShard(2));

        assertEquals(5, m.records());
        assertEquals(List.of("part-00000-0000-0000.parquet", "part-00000-0000-0001.parquet", "part-00001-0000-0000.parquet"),
                m.shards().stream().map(DatasetManifest.Shard::name).toList());
        assertEquals(List.of(0L, 2L, 3L), m.shards().stream().map(DatasetManifest.Shard::firstRecord).toList());
        assertEquals("jsonl", m.inputs().get(0).layout());
        assertEquals("json-array", m.inputs().get(1).layout());
        assertEquals("alpaca", m.inputs().get(0).format());

        List<Row> rows = spark.read().parquet(out + "/*.parquet").orderBy("record_id").collectAsList();
        assertEquals(5, rows.size());
        assertEquals(DataTypes.createArrayType(DataTypes.IntegerType, true),
                spark.read().parquet(out + "/*.parquet").schema().apply("input_ids").dataType());
        // Record 2 of the JSONL file, checked against the encoder directly.
        Row r = rows.stream().filter(x -> x.getString(4).endsWith("a.jsonl:2")).findFirst().orElseThrow();
        ExampleEncoder enc = new ExampleEncoder(TestFiles.fixtureTokenizer(), ExampleEncoder.Settings.QALORA);
        EncodedExample ex = enc.encode(AlpacaTemplate.QALORA.source(
                new SourceRecord("x", "Reverse the word.", "word2", "2drow")), "2drow");
        assertArrayEquals(ex.inputIds(), r.getList(0).stream().mapToInt(o -> (Integer) o).toArray());
        assertArrayEquals(ex.labels(), r.getList(1).stream().mapToInt(o -> (Integer) o).toArray());
        assertEquals(ex.numTargetTokens(), r.getInt(3));

        int[][] lengths = m.readLengths(out, spark.sparkContext().hadoopConfiguration());
        assertEquals(ex.numTokens(), lengths[0][1]);
        assertEquals(m.tokens(), java.util.Arrays.stream(lengths[0]).sum());
        assertEquals(m.targetTokens(), java.util.Arrays.stream(lengths[1]).sum());
        assertEquals(m, DatasetManifest.read(out, spark.sparkContext().hadoopConfiguration()));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(".tmp-")), "temporary directory left");
        }
    }

    @Test
    void flanParquetWrittenBySparkIsReadVerbatim() throws Exception {
        StructType schema = new StructType().add("inputs", DataTypes.StringType).add("targets", DataTypes.StringType)
                .add("task", DataTypes.StringType);
        Dataset<Row> df = spark.createDataFrame(List.of(
                RowFactory.create("Translate to French: cat", "chat", "t1"),
                RowFactory.create("Is 7 prime? Options: yes, no", "yes", "t2")), schema);
        String flan = dir.resolve("flan").toString();
        df.coalesce(1).write().parquet(flan);
        String out = dir.resolve("out").toString();
        DatasetManifest m = PrepareJob.run(spark, PrepareSettings.defaults(List.of(flan), PrepareFixtures.tokenizer(), out));
        assertEquals(2, m.records());
        assertEquals("parquet", m.inputs().get(0).layout());
        assertEquals("flan", m.inputs().get(0).format());
        Row r = spark.read().parquet(out + "/*.parquet").collectAsList().get(0);
        EncodedExample ex = new ExampleEncoder(TestFiles.fixtureTokenizer(), ExampleEncoder.Settings.QALORA)
                .encode("Translate to French: cat", "chat");
        assertArrayEquals(ex.inputIds(), r.getList(0).stream().mapToInt(o -> (Integer) o).toArray());
        assertTrue(r.getString(4).endsWith("[0]"), r.getString(4));
    }

    @Test
    void userTemplateAndStanfordPromptChangeSourcesAndHash() throws Exception {
        Path jsonl = PrepareFixtures.write(dir, "a.jsonl", PrepareFixtures.goodWithInput(7) + "\n");
        Path template = PrepareFixtures.write(dir, "t.json", "{\"prompt\": \"Q: {instruction} [{input}]\\nA:\"}");
        PrepareSettings base = PrepareSettings.defaults(List.of(jsonl.toString()), PrepareFixtures.tokenizer(),
                dir.resolve("o1").toString());
        DatasetManifest qalora = PrepareJob.run(spark, base);
        PrepareSettings custom = new PrepareSettings(base.data(), base.tokenizer(), dir.resolve("o2").toString(),
                base.format(), template.toString(), false, base.encoding(), base.limits(), false, 1000, false);
        DatasetManifest user = PrepareJob.run(spark, custom);
        PrepareSettings stanford = new PrepareSettings(base.data(), base.tokenizer(), dir.resolve("o3").toString(),
                base.format(), null, true, base.encoding(), base.limits(), false, 1000, false);
        DatasetManifest st = PrepareJob.run(spark, stanford);

        EncodedExample expected = new ExampleEncoder(TestFiles.fixtureTokenizer(), ExampleEncoder.Settings.QALORA)
                .encode("Q: Reverse the word. [word7]\nA:", "7drow");
        Row r = spark.read().parquet(dir.resolve("o2") + "/*.parquet").first();
        assertArrayEquals(expected.inputIds(), r.getList(0).stream().mapToInt(o -> (Integer) o).toArray());
        assertEquals(qalora.tokens() - 1, st.tokens(), "Stanford's prompt drops the lone ▁ token");
        assertEquals(3, java.util.stream.Stream.of(qalora, user, st).map(DatasetManifest::datasetHash).distinct().count());
    }

    @Test
    void existingOutputIsRefused() throws Exception {
        Path jsonl = PrepareFixtures.write(dir, "a.jsonl", PrepareFixtures.good(1) + "\n");
        Path out = Files.createDirectories(dir.resolve("out"));
        var e = org.junit.jupiter.api.Assertions.assertThrows(BadDataException.class, () -> PrepareJob.run(spark,
                PrepareSettings.defaults(List.of(jsonl.toString()), PrepareFixtures.tokenizer(), out.toString())));
        assertTrue(e.getMessage().contains("already exists"), e.getMessage());
        assertFalse(Files.exists(out.resolve("manifest.json")));
    }
}
