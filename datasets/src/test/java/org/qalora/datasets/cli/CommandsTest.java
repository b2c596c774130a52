package org.qalora.datasets.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.SparkTestSession;
import org.qalora.datasets.TestFiles;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CommandsTest {

    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {}

    private static Run run(Object command, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(command);
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    private static String tokenizer() {
        return TestFiles.root().resolve("samples/tokenizer/tokenizer.json").toString();
    }

    @Test
    void tokenizePrintsOneArrayPerText() {
        Run r = run(new TokenizeCommand(), "--tokenizer", tokenizer(), "Hello world", "");
        assertEquals(0, r.code(), r.err());
        assertEquals("[1, 22557, 1526]\n[1]\n", r.out());
        r = run(new TokenizeCommand(), "--tokenizer", tokenizer(), "--no-special", "Hello world");
        assertEquals("[22557, 1526]\n", r.out());
    }

    @Test
    void tokenizeMissingFileIsAClearError() {
        Run r = run(new TokenizeCommand(), "--tokenizer", dir.resolve("nope.json").toString(), "x");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("nope.json"), r.err());
    }

    @Test
    void prepareSamplesAndReportBadData() throws Exception {
        SparkTestSession.get();       // the command uses the active session
        Path out = dir.resolve("prepared");
        Run r = run(new PrepareCommand(), "--data", TestFiles.root().resolve("samples/flan-sample.jsonl").toString(),
                "--tokenizer", tokenizer(), "--out", out.toString(), "--format", "flan");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("prepared 40 records"), r.out());
        assertTrue(Files.exists(out.resolve("manifest.json")));

        // A relative --out (resolved against the working directory, the module's directory under Maven).
        String relative = "target/prepare-relative-" + System.nanoTime();
        r = run(new PrepareCommand(), "--data", TestFiles.root().resolve("samples/flan-sample.jsonl").toString(),
                "--tokenizer", tokenizer(), "--out", relative);
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.exists(Path.of(relative, "manifest.json")));
        try (var files = Files.walk(Path.of(relative))) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }

        Path bad = Files.writeString(dir.resolve("bad.jsonl"), "{\"inputs\": \"q\", \"targets\": \"\"}\n");
        r = run(new PrepareCommand(), "--data", bad.toString(), "--tokenizer", tokenizer(), "--out",
                dir.resolve("bad-out").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("bad.jsonl:1: empty output"), r.err());
        assertFalse(Files.exists(dir.resolve("bad-out")));

        r = run(new PrepareCommand(), "--data", bad.toString(), "--tokenizer", tokenizer(), "--out",
                dir.resolve("x").toString(), "--format", "csv");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown format 'csv'"), r.err());
    }
}
