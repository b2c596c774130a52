package org.qalora.driver.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class QaloraCliTest {
    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {}

    private static Run run(String... args) {
        CommandLine cli = QaloraCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void helpListsEveryCommand() {
        Run r = run("--help");
        assertEquals(0, r.code());
        for (String c : new String[] {"train", "quantize", "prepare", "tokenize", "eval-batch", "merge"}) {
            assertTrue(r.out().contains("  " + c + " "), c + " missing from:\n" + r.out());
        }
        Run t = run("train", "--help");
        assertTrue(t.out().contains("--steps-per-round") && t.out().contains("NOT a trained model"), t.out());
    }

    @Test
    void badSettingsFailWithOneClearLine() throws Exception {
        Run r = run("train", "--slots", "0", "--output", dir.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("qalora train: bad train settings: slots must be >= 1, got 0"), r.err());
        Path job = Files.writeString(dir.resolve("job.yaml"), "stepz: 3\n");
        Run y = run("train", "--job", job.toString());
        assertTrue(y.err().contains("unknown setting 'stepz'"), y.err());
    }
}
