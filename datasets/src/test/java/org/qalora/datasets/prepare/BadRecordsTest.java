package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.qalora.datasets.SparkTestSession;
import org.qalora.datasets.read.BadRecordReason;
import org.qalora.datasets.read.ReadResult;
import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.read.RecordReader;
import org.qalora.datasets.read.RecordReaders;
import org.qalora.datasets.read.RecordValidator;
import org.qalora.datasets.tokenize.ExampleEncoder;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every kind of bad record, read directly and through prepare in both modes (stop; skip and count). */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class BadRecordsTest {

    private static final int MAX_CHARS = 200;

    @TempDir
    Path dir;

    /** A JSONL line (as bytes) that is bad for the given reason; good records are Alpaca. */
    static byte[] badLine(BadRecordReason reason) {
        String s = switch (reason) {
            case MALFORMED_JSON -> "{\"instruction\": \"Add 1 and 2.\", \"output\": ";
            case NOT_AN_OBJECT -> "[\"Add 1 and 2.\", \"3\"]";
            case MISSING_FIELD -> "{\"instruction\": \"Add 1 and 2.\", \"input\": \"\"}";
            case WRONG_TYPE -> "{\"instruction\": \"Add 1 and 2.\", \"input\": \"\", \"output\": 3}";
            case EMPTY_OUTPUT -> "{\"instruction\": \"Add 1 and 2.\", \"input\": \"\", \"output\": \"  \"}";
            case TOO_LONG -> "{\"instruction\": \"Say it.\", \"input\": \"\", \"output\": \"" + "a".repeat(MAX_CHARS) + "\"}";
            case INVALID_UTF8 -> null;
        };
        if (s != null) {
            return s.getBytes(StandardCharsets.UTF_8);
        }
        return PrepareFixtures.withInvalidUtf8("{\"instruction\": \"Add 1 and 2.\", \"input\": \"caf", "\", \"output\": \"3\"}");
    }

    private Path fileWith(String name, List<byte[]> lines) throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] l : lines) {
            b.write(l);
            b.write('\n');
        }
        return PrepareFixtures.writeBytes(dir, name, b.toByteArray());
    }

    private static byte[] good(int i) {
        return PrepareFixtures.good(i).getBytes(StandardCharsets.UTF_8);
    }

    private PrepareSettings settings(List<String> data, String out) {
        return new PrepareSettings(data, PrepareFixtures.tokenizer(), out, RecordFormat.AUTO, null, false,
                ExampleEncoder.Settings.QALORA, new RecordValidator.Limits(MAX_CHARS), false, 1000, false);
    }

    @ParameterizedTest
    @EnumSource(BadRecordReason.class)
    void readerReportsLineAndReason(BadRecordReason reason) throws Exception {
        Path f = fileWith("r.jsonl", List.of(good(1), badLine(reason), good(2)));
        List<ReadResult> results = new ArrayList<>();
        try (RecordReader r = RecordReaders.open(f.toString(), new Configuration(), RecordFormat.AUTO,
                new RecordValidator.Limits(MAX_CHARS))) {
            ReadResult x;
            while ((x = r.next()) != null) {
                results.add(x);
            }
        }
        assertEquals(3, results.size(), "a bad JSONL line does not stop reading");
        assertTrue(results.get(0).isOk() && results.get(2).isOk());
        assertEquals(reason, results.get(1).bad().reason(), results.get(1).bad().message());
        assertTrue(results.get(1).bad().recordId().endsWith("r.jsonl:2"), results.get(1).bad().recordId());
    }

    @ParameterizedTest
    @EnumSource(BadRecordReason.class)
    void stopModeNamesFileLineAndReasonAndWritesNothing(BadRecordReason reason) throws Exception {
        SparkSession spark = SparkTestSession.get();
        Path f = fileWith("s.jsonl", List.of(good(1), good(2), badLine(reason), good(3)));
        Path out = dir.resolve("out");
        var e = assertThrows(BadDataException.class, () -> PrepareJob.run(spark,
                settings(List.of(f.toString()), out.toString())));
        assertTrue(e.getMessage().contains("s.jsonl:3: " + reason.text()), e.getMessage());
        assertTrue(e.getMessage().contains("--skip-bad-records"), e.getMessage());
        assertFalse(Files.exists(out));
        try (var s = Files.list(dir)) {
            assertEquals(List.of(f), s.toList(), "nothing but the input is left");
        }
    }

    @Test
    void skipModeCountsEveryReason() throws Exception {
        SparkSession spark = SparkTestSession.get();
        List<byte[]> lines = new ArrayList<>();
        lines.add(good(0));
        int i = 1;
        for (BadRecordReason r : BadRecordReason.values()) {
            lines.add(badLine(r));
            lines.add(good(i++));
        }
        lines.add(badLine(BadRecordReason.EMPTY_OUTPUT));
        Path f = fileWith("k.jsonl", lines);
        String out = dir.resolve("out").toString();
        DatasetManifest m = PrepareJob.run(spark, settings(List.of(f.toString()), out).withSkipBadRecords(true));
        assertEquals(1 + BadRecordReason.values().length, m.records());
        for (BadRecordReason r : BadRecordReason.values()) {
            assertEquals(r == BadRecordReason.EMPTY_OUTPUT ? 2L : 1L, m.skipped().get(r.name()), r.name());
        }
        assertEquals(BadRecordReason.values().length + 1, m.inputs().get(0).skipped());
    }

    @Test
    void jsonArrayInvalidUtf8AndWrongTypeAreSkippablePerElement() throws Exception {
        byte[] bad = PrepareFixtures.withInvalidUtf8("[" + PrepareFixtures.good(1) + ",\n{\"instruction\": \"x\", "
                + "\"output\": \"ab", "c\"},\n{\"instruction\": 7, \"output\": \"1\"},\n" + PrepareFixtures.good(2) + "]");
        Path f = PrepareFixtures.writeBytes(dir, "a.json", bad);
        List<ReadResult> results = new ArrayList<>();
        try (RecordReader r = RecordReaders.open(f.toString(), new Configuration(), RecordFormat.ALPACA,
                RecordValidator.Limits.DEFAULT)) {
            ReadResult x;
            while ((x = r.next()) != null) {
                results.add(x);
            }
        }
        assertEquals(4, results.size());
        assertEquals(BadRecordReason.INVALID_UTF8, results.get(1).bad().reason());
        assertTrue(results.get(1).bad().recordId().endsWith("a.json[1]"));
        assertEquals(BadRecordReason.WRONG_TYPE, results.get(2).bad().reason());
        assertTrue(results.get(3).isOk());
        assertEquals("Add 2 and 3.", results.get(3).record().instruction());
    }

    /** Parquet: a non-string column is WRONG_TYPE, non-UTF-8 bytes in a binary column INVALID_UTF8, per row. */
    @Test
    void parquetWrongTypeAndInvalidUtf8PerRow() throws Exception {
        SparkSession spark = SparkTestSession.get();
        org.apache.spark.sql.types.StructType schema = new org.apache.spark.sql.types.StructType()
                .add("inputs", org.apache.spark.sql.types.DataTypes.BinaryType)
                .add("targets", org.apache.spark.sql.types.DataTypes.BinaryType);
        byte[] bad = {(byte) 0xC3, (byte) 0x28};
        List<org.apache.spark.sql.Row> rows = List.of(
                org.apache.spark.sql.RowFactory.create("q1".getBytes(StandardCharsets.UTF_8), "a1".getBytes(StandardCharsets.UTF_8)),
                org.apache.spark.sql.RowFactory.create(bad, "a2".getBytes(StandardCharsets.UTF_8)),
                org.apache.spark.sql.RowFactory.create("q3".getBytes(StandardCharsets.UTF_8), null));
        String p1 = dir.resolve("bin.parquet").toString();
        spark.createDataFrame(rows, schema).coalesce(1).write().parquet(p1);
        org.apache.spark.sql.types.StructType intSchema = new org.apache.spark.sql.types.StructType()
                .add("inputs", org.apache.spark.sql.types.DataTypes.StringType)
                .add("targets", org.apache.spark.sql.types.DataTypes.IntegerType);
        String p2 = dir.resolve("int.parquet").toString();
        spark.createDataFrame(List.of(org.apache.spark.sql.RowFactory.create("q", 4)), intSchema).coalesce(1)
                .write().parquet(p2);

        DatasetManifest m = PrepareJob.run(spark, settings(List.of(p1, p2), dir.resolve("out").toString())
                .withSkipBadRecords(true));
        assertEquals(1, m.records());
        assertEquals(1L, m.skipped().get("INVALID_UTF8"));
        assertEquals(1L, m.skipped().get("MISSING_FIELD"));
        assertEquals(1L, m.skipped().get("WRONG_TYPE"));
        var e = assertThrows(BadDataException.class, () -> PrepareJob.run(spark,
                settings(List.of(p1), dir.resolve("out2").toString())));
        assertTrue(e.getMessage().contains("[1]: invalid UTF-8: column \"inputs\""), e.getMessage());
    }

    @Test
    void brokenJsonArrayStopsEvenInSkipMode() throws Exception {
        SparkSession spark = SparkTestSession.get();
        Path f = PrepareFixtures.write(dir, "broken.json", "[\n" + PrepareFixtures.good(1) + ",\n{\"instruction\": \n");
        var e = assertThrows(BadDataException.class, () -> PrepareJob.run(spark,
                settings(List.of(f.toString()), dir.resolve("out").toString()).withSkipBadRecords(true)));
        assertTrue(e.getMessage().contains("broken.json") && e.getMessage().contains("line"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("out")));
    }
}
