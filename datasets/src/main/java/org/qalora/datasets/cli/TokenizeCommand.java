package org.qalora.datasets.cli;

import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.tokenize.TextTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/** {@code qalora tokenize}: one JSON array of token ids per text, as HF tokenizers would produce. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Print the token ids of each TEXT as a JSON array, one per line.")
public final class TokenizeCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--tokenizer", required = true, paramLabel = "FILE", description = "HF tokenizer.json.")
    String tokenizer;

    @Option(names = "--no-special", description = "Do not add special tokens (no BOS).")
    boolean noSpecial;

    @Parameters(arity = "1..*", paramLabel = "TEXT", description = "Texts to tokenize.")
    List<String> texts;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        TextTokenizer tok;
        try {
            tok = TextTokenizer.open(tokenizer, new Configuration());
        } catch (IllegalArgumentException e) {
            spec.commandLine().getErr().println("tokenize: " + e.getMessage());
            return 2;
        }
        for (String t : texts) {
            int[] ids = tok.encode(t, !noSpecial);
            out.println(IntStream.of(ids).mapToObj(Integer::toString).collect(Collectors.joining(", ", "[", "]")));
        }
        out.flush();
        return 0;
    }
}
