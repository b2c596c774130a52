package org.qalora.datasets.read;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad-input fuzzing of the Alpaca (JSON array) and FLAN (JSON lines) readers: a fixed seed, a bounded count of
 * mutations of the samples (random bytes, truncation, values of the wrong JSON type, deep nesting). Each file either
 * reads to the end, one {@link ReadResult} per record (bad records as {@code BadRecord}s), or fails with one
 * {@link IOException} naming the file; never another exception type, never a hang, and nothing is written.
 */
class RecordFuzzTest {
    private static final long SEED = 0xF1A_4L;
    private static final int MUTATIONS = 120;
    private static final Configuration CONF = new Configuration();
    private static final String NOISE = "{}[]\",:\\ \n\r\t0123456789abcnulltrue\u00e9\u2713";

    @TempDir
    Path dir;

    @Test
    void mutatedAlpacaArraysFailCleanly() throws IOException {
        fuzz(root().resolve("samples/alpaca-sample.json"), "data.json", RecordFormat.ALPACA, SEED);
    }

    @Test
    void mutatedFlanLinesFailCleanly() throws IOException {
        fuzz(root().resolve("samples/flan-sample.jsonl"), "data.jsonl", RecordFormat.FLAN, SEED + 1);
    }

    private void fuzz(Path sample, String fileName, RecordFormat format, long seed) throws IOException {
        String original = Files.readString(sample, StandardCharsets.UTF_8);
        SplittableRandom random = new SplittableRandom(seed);
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                String text = switch (random.nextInt(5)) {
                    case 0 -> {
                        char[] c = original.toCharArray();
                        for (int k = random.nextInt(1, 6); k > 0; k--) {
                            c[random.nextInt(c.length)] = NOISE.charAt(random.nextInt(NOISE.length()));
                        }
                        yield new String(c);
                    }
                    case 1 -> original.substring(0, random.nextInt(original.length()));
                    case 2 -> replaceValue(original, random,
                            List.of("1", "true", "null", "[]", "{}", "[\"a\"]", "{\"x\": 1}", "1e999", "\"\\ud800\"")
                                    .get(random.nextInt(9)));
                    case 3 -> replaceValue(original, random, "[".repeat(5000) + "]".repeat(5000));
                    default -> original.replaceFirst("\"(instruction|inputs|output|targets)\"", "\"x" + i + "\"");
                };
                byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
                if (random.nextInt(8) == 0) {   // a stray invalid UTF-8 byte
                    bytes[random.nextInt(bytes.length)] = (byte) 0xC3;
                }
                check(Files.write(dir.resolve(fileName), bytes), format, "mutation " + i + ": " + text);
            }
        });
    }

    /**
     * Regression: an element nested deeper than Jackson's limit (1000) failed in readValueAsTree with an exception
     * that has no location, and the error report itself threw NullPointerException.
     */
    @Test
    void deeplyNestedElementIsAMalformedFileNamingTheFile() throws IOException {
        Path f = Files.writeString(dir.resolve("deep.json"), "[{\"instruction\": " + "[".repeat(2000) + "]".repeat(2000)
                + ", \"output\": \"x\"}]");
        MalformedFileException e = org.junit.jupiter.api.Assertions.assertThrows(MalformedFileException.class, () -> {
            try (RecordReader r = RecordReaders.open(f.toString(), CONF, RecordFormat.ALPACA, RecordValidator.Limits.DEFAULT)) {
                while (r.next() != null) {
                    // read to the end
                }
            }
        });
        assertTrue(e.getMessage().startsWith(f.toString()) && e.getMessage().contains("element 0"), e.getMessage());
    }

    /** Replaces the i-th JSON string value (after a ':') with {@code replacement}. */
    private static String replaceValue(String s, SplittableRandom random, String replacement) {
        int from = s.indexOf(": \"", random.nextInt(Math.max(1, s.length() - 10)));
        if (from < 0) {
            return s;
        }
        int end = s.indexOf('"', from + 3);
        while (end > 0 && s.charAt(end - 1) == '\\') {
            end = s.indexOf('"', end + 1);
        }
        return end < 0 ? s : s.substring(0, from + 2) + replacement + s.substring(end + 1);
    }

    private void check(Path f, RecordFormat format, String what) throws IOException {
        try (RecordReader r = RecordReaders.open(f.toString(), CONF, format, RecordValidator.Limits.DEFAULT)) {
            ReadResult x;
            int n = 0;
            while ((x = r.next()) != null) {
                assertTrue(x.isOk() != (x.bad() != null), what);
                if (++n > 100_000) {
                    fail(what + ": reader does not terminate");
                }
            }
        } catch (IOException e) {
            assertTrue(e.getMessage() != null && e.getMessage().contains(f.toString()),
                    what + "\nmessage does not name the file: " + e.getMessage());
        } catch (Throwable t) {
            fail(what + "\nexpected records, bad records or an IOException naming the file, got " + t, t);
        }
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(f), left.toList(), what + ": the reader wrote something");
        }
        Files.delete(f);
    }

    private static Path root() {
        String configured = System.getProperty("qalora.root");
        for (Path d = configured != null ? Path.of(configured) : Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("samples/alpaca-sample.json"))) {
                return d;
            }
        }
        throw new IllegalStateException("samples/ not found above " + Path.of("").toAbsolutePath());
    }
}
