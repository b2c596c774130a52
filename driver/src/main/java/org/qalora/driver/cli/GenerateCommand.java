package org.qalora.driver.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.driver.eval.ModelTokenizer;
import org.qalora.driver.eval.ResultFile;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.generate.Generator;
import org.qalora.worker.generate.InferenceModel;
import org.qalora.worker.generate.Sampling;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code qalora generate}: continues prompts with a model (HF, GPTQ, or merged with float zeros) and an optional
 * QA-LoRA adapter, through the worker's KV-cache {@link Generator}. One {@code --prompt} streams its tokens to
 * stdout as they are produced; a {@code --prompts} file is generated in batches and written as JSONL
 * ({@code {"prompt": .., "output": ..}}), to {@code --out} or stdout.
 */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate text with a model (and adapter): greedy, or sampled with --temperature/--top-p/--seed.",
                "The prompt is wrapped in the Alpaca template (as training does) unless --template none."})
public final class GenerateCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "HF, GPTQ or merged model directory (any Hadoop path)")
    String model;
    @Option(names = "--adapter", paramLabel = "DIR", description = "PEFT QA-LoRA adapter directory")
    String adapter;
    @Option(names = "--tokenizer", paramLabel = "FILE", description = "tokenizer.json; default: the model directory's")
    String tokenizer;

    static final class Input {
        @Option(names = "--prompt", paramLabel = "TEXT", description = "one prompt; its tokens stream to stdout")
        String prompt;
        @Option(names = "--prompts", paramLabel = "FILE", description = "JSONL, one {\"prompt\": \"..\"} per line")
        String prompts;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    @Option(names = "--template", paramLabel = "T", description = "alpaca (the prompt is the instruction of qa-lora's Alpaca prompt) or none (used as is); default alpaca")
    String template = "alpaca";
    @Option(names = "--max-new-tokens", paramLabel = "N", description = "at most N new tokens per prompt; default 256")
    int maxNewTokens = 256;
    @Option(names = "--temperature", paramLabel = "T", description = "0 = greedy (the default); > 0 samples from softmax(logits / T)")
    double temperature = 0;
    @Option(names = "--top-p", paramLabel = "P", description = "nucleus sampling: keep the most probable tokens up to mass P; default 1")
    double topP = 1;
    @Option(names = "--seed", paramLabel = "S", description = "sampling seed (prompt i draws from its own stream); default 0")
    long seed = 0;
    @Option(names = "--out", paramLabel = "FILE", description = "JSONL output (refused if it exists, unless --overwrite); default stdout")
    String out;
    @Option(names = "--overwrite", description = "replace an existing --out file")
    boolean overwrite;
    @Option(names = "--device", paramLabel = "D", description = "cpu, gpu (GPU 0) or gpu:N; default cpu")
    String device = "cpu";
    @Option(names = "--precision", paramLabel = "P", description = "auto (bf16 on a GPU, fp32 on the CPU), fp32 or bf16; default auto")
    String precision = "auto";
    @Option(names = "--threads", paramLabel = "N", description = "CPU threads; default all processors")
    int threads = Runtime.getRuntime().availableProcessors();
    @Option(names = "--batch-size", paramLabel = "N", description = "prompts decoded together; default 8")
    int batchSize = 8;

    @Override
    public Integer call() throws Exception {
        PrintWriter console = spec.commandLine().getOut();
        Sampling sampling;
        Precision p;
        try {                                                           // bad values fail before any file is read
            sampling = new Sampling(temperature, topP, seed);
            if (!template.equals("alpaca") && !template.equals("none")) {
                throw new IllegalArgumentException("--template '" + template + "' is not one of alpaca, none");
            }
            p = precision.trim().equalsIgnoreCase("auto") ? null : Precision.parse(precision, "--precision");
        } catch (IllegalArgumentException e) {
            throw new InvalidSettingsException(e.getMessage());         // a usage error: exit 2
        }
        Configuration hadoop = new Configuration();
        if (out != null) {
            ResultFile.checkWritable(out, overwrite, hadoop);
        }
        List<String> prompts = input.prompt != null ? List.of(input.prompt) : readPrompts(input.prompts, hadoop);
        TextTokenizer tok = ModelTokenizer.open(model, tokenizer, hadoop);
        List<int[]> ids = new ArrayList<>();
        for (String prompt : prompts) {
            ids.add(tok.encode(source(prompt), true));                  // BOS + source, as training tokenizes it
        }
        Generator.Settings settings = new Generator.Settings(maxNewTokens, tok.eosId(), sampling, batchSize);
        List<int[]> generated;
        try (Backend backend = Backends.open(Backends.resolve(device, null), p, threads)) {
            InferenceModel m = InferenceModel.load(model, adapter, backend, new HadoopPaths(hadoop));
            Streamer streamer = input.prompt != null && out == null ? new Streamer(tok, console) : null;
            generated = m.generator().generate(ids, settings, streamer == null ? null : streamer::onToken);
            if (streamer != null) {
                streamer.finish(generated.get(0));
                return 0;
            }
        }
        ByteArrayOutputStream jsonl = new ByteArrayOutputStream();
        for (int i = 0; i < prompts.size(); i++) {
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("prompt", prompts.get(i));
            line.put("output", tok.decode(generated.get(i)));
            jsonl.write(JSON.writeValueAsBytes(line));
            jsonl.write('\n');
        }
        if (out == null) {
            console.print(jsonl.toString(StandardCharsets.UTF_8));
        } else {
            ResultFile.write(out, jsonl.toByteArray(), overwrite, hadoop);
            console.println("qalora generate: wrote " + prompts.size() + " generations to " + out);
        }
        console.flush();
        return 0;
    }

    private String source(String prompt) {
        return template.equals("none") ? prompt
                : AlpacaTemplate.QALORA.source(new SourceRecord("--prompt", prompt, "", ""));
    }

    /** Lines of {@code {"prompt": "..."}}; blank lines are skipped; an error names file, line and field. */
    static List<String> readPrompts(String location, Configuration conf) throws IOException {
        HadoopPaths paths = new HadoopPaths(conf);
        if (!paths.exists(location)) {
            throw new IllegalArgumentException(location + ": no such prompts file");
        }
        List<String> prompts = new ArrayList<>();
        String[] lines = new String(paths.readAllBytes(location), StandardCharsets.UTF_8).split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            if (lines[i].isBlank()) {
                continue;
            }
            String where = location + ":" + (i + 1);
            JsonNode node;
            try {
                node = JSON.readTree(lines[i]);
            } catch (IOException e) {
                throw new IllegalArgumentException(where + ": not a JSON object: " + e.getMessage().lines().findFirst().orElse(""));
            }
            if (node == null || !node.isObject()) {
                throw new IllegalArgumentException(where + ": expected a JSON object {\"prompt\": \"..\"}");
            }
            JsonNode prompt = node.get("prompt");
            if (prompt == null || !prompt.isTextual()) {
                throw new IllegalArgumentException(where + ": field \"prompt\" " + (prompt == null ? "is missing"
                        : "must be a string, got " + prompt.getNodeType().name().toLowerCase(Locale.ROOT)));
            }
            prompts.add(prompt.textValue());
        }
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException(location + " holds no prompt");
        }
        return prompts;
    }

    /**
     * Prints one generation as it grows. The text of all tokens so far is decoded and the part not yet printed is
     * written, except while the last token is a byte-fallback piece: the decoder turns a run of byte pieces into
     * text only as a whole (half a UTF-8 character, or an invalid run that becomes U+FFFD per byte), so that text
     * waits until the run ends. Text before it never changes.
     */
    private static final class Streamer {
        private final TextTokenizer tok;
        private final PrintWriter console;
        private final List<Integer> tokens = new ArrayList<>();
        private String printed = "";

        Streamer(TextTokenizer tok, PrintWriter console) {
            this.tok = tok;
            this.console = console;
        }

        void onToken(int prompt, int token) {
            if (token == tok.eosId()) {
                return;
            }
            tokens.add(token);
            if (!tok.isByteToken(token)) {
                emit(tok.decode(tokens.stream().mapToInt(Integer::intValue).toArray()));
            }
        }

        private void emit(String text) {
            if (text.startsWith(printed)) {
                console.print(text.substring(printed.length()));
                console.flush();
                printed = text;
            }
        }

        void finish(int[] all) {
            emit(tok.decode(all));
            console.println();
            console.flush();
        }
    }
}
