package org.qalora.datasets.prepare;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.parquet.format.ColumnChunk;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.RowGroup;
import org.apache.parquet.format.Util;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.JvmProcess;
import org.qalora.datasets.TestFiles;
import org.qalora.datasets.cli.PrepareCommand;
import picocli.CommandLine;

import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code qalora prepare} run twice on the same input, each in its own JVM, writes the same bytes: every shard (footer
 * included), lengths.bin, and manifest.json less its timestamp fields. Two runs inside one JVM cannot show this: the
 * order of a HashSet of enums (parquet-mr's column chunk encodings) follows identity hash codes, which are fixed
 * within a process and differ between processes.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class PrepareAcrossProcessesTest {

    @TempDir
    Path dir;

    /** The child process: {@code qalora prepare ARGS} (the CLI, with its own local Spark). */
    public static final class Producer {
        public static void main(String[] args) {
            System.exit(new CommandLine(new PrepareCommand()).execute(args));
        }
    }

    @Test
    void twoProcessesWriteIdenticalBytes() throws Exception {
        // The Alpaca sample as a JSON array, and a JSONL file cut into several splits: both task shapes.
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            lines.add(i % 2 == 0 ? PrepareFixtures.good(i) : PrepareFixtures.goodWithInput(i));
        }
        Path jsonl = PrepareFixtures.write(dir, "big.jsonl", PrepareFixtures.lines(lines));
        Path sample = TestFiles.root().resolve("samples/alpaca-sample.json");
        Map<String, byte[]> one = prepare(List.of(sample, jsonl), "one");
        Map<String, byte[]> two = prepare(List.of(sample, jsonl), "two");

        assertEquals(one.keySet(), two.keySet(), "the same files");
        assertTrue(one.keySet().stream().filter(n -> n.endsWith(".parquet")).count() > 3, one.keySet().toString());
        // Shards and lengths.bin first (the manifest holds their checksums), then the manifest, then the local
        // filesystem's .crc side files (a function of the bytes).
        List<String> names = one.keySet().stream().sorted(java.util.Comparator.comparingInt(
                (String n) -> n.startsWith(".") ? 2 : n.equals(DatasetManifest.MANIFEST) ? 1 : 0)).toList();
        for (String name : names) {
            if (name.endsWith(".parquet")) {   // the canonical order itself, which a lucky pair of processes could hide
                for (RowGroup g : footer(one.get(name)).getRow_groups()) {
                    for (ColumnChunk c : g.getColumns()) {
                        List<Integer> values = c.getMeta_data().getEncodings().stream().map(e -> e.getValue()).toList();
                        assertEquals(values.stream().sorted().toList(), values, name + " " + c.getMeta_data()
                                .getPath_in_schema() + ": encodings in Thrift value order");
                    }
                }
            }
            if (name.equals(DatasetManifest.MANIFEST)) {
                assertEquals(withoutTimestamps(one.get(name)), withoutTimestamps(two.get(name)), name);
            } else {
                assertArrayEquals(one.get(name), two.get(name), name + " differs between two processes"
                        + (name.endsWith(".parquet") ? ": " + footerDifference(one.get(name), two.get(name)) : ""));
            }
        }
    }

    private Map<String, byte[]> prepare(List<Path> inputs, String name) throws Exception {
        Path out = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("--master", "local[2]", "--tokenizer", PrepareFixtures.tokenizer(),
                "--out", out.toString(), "--records-per-shard", "7", "--split-bytes", "1500", "--data"));
        inputs.forEach(p -> args.add(p.toString()));
        JvmProcess.run(Producer.class, dir.resolve(name + ".log"),
                List.of("-Dspark.ui.enabled=false", "-Dspark.driver.host=127.0.0.1"), args);
        Map<String, byte[]> files = new TreeMap<>();
        try (Stream<Path> s = Files.list(out)) {
            for (Path p : s.toList()) {
                files.put(p.getFileName().toString(), Files.readAllBytes(p));
            }
        }
        return files;
    }

    /** The manifest's JSON with every field named as a timestamp ({@code *_at}, {@code *timestamp*}) removed. */
    static JsonNode withoutTimestamps(byte[] json) throws Exception {
        JsonNode root = new ObjectMapper().readTree(json);
        strip(root);
        return root;
    }

    private static void strip(JsonNode n) {
        if (n instanceof ObjectNode o) {
            for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (f.endsWith("_at") || f.toLowerCase().contains("timestamp")) {
                    it.remove();
                }
            }
        }
        n.forEach(PrepareAcrossProcessesTest::strip);
    }

    /** Where two shards' footers differ, column by column, for the failure message. */
    private static String footerDifference(byte[] a, byte[] b) throws Exception {
        FileMetaData fa = footer(a);
        FileMetaData fb = footer(b);
        List<String> diffs = new ArrayList<>();
        if (!fa.getCreated_by().equals(fb.getCreated_by())) {
            diffs.add("created_by " + fa.getCreated_by() + " vs " + fb.getCreated_by());
        }
        for (int g = 0; g < Math.min(fa.getRow_groupsSize(), fb.getRow_groupsSize()); g++) {
            RowGroup ra = fa.getRow_groups().get(g);
            RowGroup rb = fb.getRow_groups().get(g);
            for (int c = 0; c < Math.min(ra.getColumnsSize(), rb.getColumnsSize()); c++) {
                ColumnChunk ca = ra.getColumns().get(c);
                ColumnChunk cb = rb.getColumns().get(c);
                if (!ca.equals(cb)) {
                    diffs.add(ca.getMeta_data().getPath_in_schema() + ": encodings " + ca.getMeta_data().getEncodings()
                            + " vs " + cb.getMeta_data().getEncodings());
                }
            }
        }
        return diffs.isEmpty() ? "footers equal, data differs" : String.join("; ", diffs);
    }

    static FileMetaData footer(byte[] file) throws Exception {
        int len = ByteBuffer.wrap(file, file.length - 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        return Util.readFileMetaData(new ByteArrayInputStream(Arrays.copyOfRange(file, file.length - 8 - len,
                file.length - 8)));
    }
}
