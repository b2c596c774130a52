package org.qalora.driver.eval;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.qalora.driver.cli.QaloraCli;
import org.qalora.quant.testing.Fixtures;
import picocli.CommandLine;

/** Runs a qalora command in this JVM and keeps its exit code, stdout and stderr. */
public record CliRun(int code, String out, String err) {

    public static CliRun of(String... args) {
        CommandLine cli = QaloraCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new CliRun(code, out.toString(), err.toString());
    }

    /** The 512-piece tokenizer that fits the fixture model (reference/tiny-tokenizer, see its README). */
    public static Path tinyTokenizer() {
        return Fixtures.root().resolveSibling("reference").resolve("tiny-tokenizer/tokenizer.json");
    }

    public static Path repo() {
        return Fixtures.root().getParent();
    }
}
