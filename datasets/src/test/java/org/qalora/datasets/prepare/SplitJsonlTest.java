package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.SparkTestSession;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A JSONL file cut into many line-aligned splits gives the same records, ids and tokens as one task reading it. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SplitJsonlTest {

    @TempDir
    Path dir;

    private Path data(int n, int badLine) throws Exception {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (i + 1 == badLine) {
                lines.add("{\"instruction\": \"Add.\", \"input\": \"\", \"output\": \"\"}");
            } else {
                lines.add(i % 2 == 0 ? PrepareFixtures.good(i) : PrepareFixtures.goodWithInput(i));
            }
            if (i % 17 == 5) {
                lines.add("");                       // blank lines count for line numbers
            }
        }
        return PrepareFixtures.write(dir, "big.jsonl", PrepareFixtures.lines(lines));
    }

    @Test
    void splitsMatchTheWholeFile() throws Exception {
        SparkSession spark = SparkTestSession.get();
        Path f = data(120, -1);
        PrepareSettings whole = PrepareSettings.defaults(List.of(f.toString()), PrepareFixtures.tokenizer(),
                dir.resolve("whole").toString());
        PrepareSettings split = whole.withOut(dir.resolve("split").toString()).withSplitBytes(700);
        DatasetManifest a = PrepareJob.run(spark, whole);
        DatasetManifest b = PrepareJob.run(spark, split);

        assertEquals(1, a.shards().size());
        assertTrue(b.shards().size() > 10, "expected many splits, got " + b.shards().size());
        assertEquals(a.records(), b.records());
        assertEquals(a.tokens(), b.tokens());
        assertEquals(a.inputs().getFirst().sha256(), b.inputs().getFirst().sha256(), "whole-file hash either way");
        assertEquals(1, b.inputs().size());
        assertEquals(a.lengthsSha256(), b.lengthsSha256(), "same records in the same order");
        List<Row> ra = rows(spark, dir.resolve("whole"));
        List<Row> rb = rows(spark, dir.resolve("split"));
        assertEquals(ra.size(), rb.size());
        for (int i = 0; i < ra.size(); i++) {
            assertEquals(ra.get(i).getString(4), rb.get(i).getString(4));
            assertEquals(ra.get(i).getList(0), rb.get(i).getList(0));
        }
        assertTrue(rb.stream().anyMatch(r -> r.getString(4).endsWith("big.jsonl:" + (120 + 120 / 17))),
                "the last record keeps its line number");
        int[][] la = a.readLengths(dir.resolve("whole").toString(), new Configuration());
        int[][] lb = b.readLengths(dir.resolve("split").toString(), new Configuration());
        assertArrayEquals(la[0], lb[0]);
    }

    @Test
    void badRecordInALaterSplitNamesItsLine() throws Exception {
        SparkSession spark = SparkTestSession.get();
        Path f = data(80, 61);
        // line 61 of the records is preceded by blank lines after records 6, 23, 40, 57: file line 65
        var e = assertThrows(BadDataException.class, () -> PrepareJob.run(spark, PrepareSettings.defaults(
                List.of(f.toString()), PrepareFixtures.tokenizer(), dir.resolve("o").toString()).withSplitBytes(500)));
        assertTrue(e.getMessage().contains("big.jsonl:65: empty output"), e.getMessage());
        assertTrue(Files.notExists(dir.resolve("o")));
    }

    /** Rows in record order: shards sorted by name, rows in file order within each. */
    private static List<Row> rows(SparkSession spark, Path out) throws Exception {
        List<Row> all = new ArrayList<>();
        try (var s = Files.list(out)) {
            for (Path p : s.filter(x -> x.getFileName().toString().endsWith(".parquet"))
                    .sorted(Comparator.comparing(Path::toString)).toList()) {
                all.addAll(spark.read().parquet(p.toString()).collectAsList());
            }
        }
        return all;
    }
}
