package org.qalora.driver.cli;

import java.io.PrintWriter;
import org.qalora.datasets.cli.PrepareCommand;
import org.qalora.datasets.cli.TokenizeCommand;
import org.qalora.worker.cli.EvalBatchCommand;
import org.qalora.worker.cli.MergeCommand;
import org.qalora.worker.export.ExportCommand;
import org.qalora.worker.quantize.QuantizeCommand;
import org.qalora.driver.config.InvalidSettingsException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The root of every qalora command ({@code bin/qalora <command>}, and the main class for spark-submit). Each
 * command is a picocli class in the module that owns it; this class only registers them. Errors print one clear
 * message (the cause's) and exit 2 for settings refused before any work ({@link InvalidSettingsException}, like
 * picocli's usage errors) or 1 for a failure during the work; {@code QALORA_DEBUG=1} adds the stack trace.
 */
@Command(name = "qalora", mixinStandardHelpOptions = true, version = "qalora 0.1.0",
        description = "QA-LoRA fine-tuning of quantized LLaMA models on Apache Spark.",
        subcommands = {TrainCommand.class, QuantizeCommand.class, PrepareCommand.class, TokenizeCommand.class,
                EvalBatchCommand.class, MergeCommand.class, GenerateCommand.class, EvalCommand.class,
                ExportCommand.class})
public final class QaloraCli implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new QaloraCli());
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
            PrintWriter err = cmd.getErr();
            err.println("qalora " + cmd.getCommandName() + ": " + message(e));
            if (System.getenv("QALORA_DEBUG") != null) {
                e.printStackTrace(err);
            }
            err.flush();
            return e instanceof InvalidSettingsException ? 2 : 1;
        });
        return cli;
    }

    /** The most useful message in a cause chain: the first non-empty one that is not just a wrapped exception. */
    static String message(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && !m.isBlank() && (t.getCause() == null || !m.equals(t.getCause().toString()))) {
                return m;
            }
        }
        return e.toString();
    }

    public static void main(String[] args) {
        int code = commandLine().execute(args);
        // Exit only on failure: under spark-submit (YARN cluster mode) a System.exit(0) before main returns can be
        // reported as a failed application.
        if (code != 0) {
            System.exit(code);
        }
    }
}
