package org.qalora.driver.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.qalora.driver.config.InvalidSettingsException;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.mmlu.MmluData;
import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.driver.eval.EvalItem;
import org.qalora.driver.eval.EvalOutcome;
import org.qalora.driver.eval.EvalRunner;
import org.qalora.driver.eval.EvalTask;
import org.qalora.driver.eval.MmluEval;
import org.qalora.driver.eval.ModelSpec;
import org.qalora.driver.eval.ModelTokenizer;
import org.qalora.driver.eval.RecordEval;
import org.qalora.driver.eval.ResultFile;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.generate.InferenceModel;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code qalora eval}: loss and exact match on Alpaca / FLAN records, or MMLU accuracy, of a model (optionally with
 * an adapter), written to a JSON file. Runs here, or as a Spark job with {@code --master} (or under spark-submit):
 * the items are tokenized on the driver, sharded across executors that load the model once each, and the numbers
 * are the ones a local run gives.
 */
@Command(name = "eval", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Evaluate a model: --data FILE (loss and/or exact match on Alpaca or FLAN records) or --mmlu DIR"
                + " (MMLU accuracy, Hendrycks' prompt, 0 or k shots). Writes a JSON result file.",
                "With --master (or under spark-submit) the items are scored by Spark executors."})
public final class EvalCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "HF, GPTQ or merged model directory (any Hadoop path)")
    String model;
    @Option(names = "--adapter", paramLabel = "DIR", description = "PEFT QA-LoRA adapter directory")
    String adapter;
    @Option(names = "--tokenizer", paramLabel = "FILE", description = "tokenizer.json; default: the model directory's")
    String tokenizer;

    static final class Source {
        @Option(names = "--data", paramLabel = "FILE", arity = "1..*", description = "Alpaca or FLAN records (JSON, JSONL, Parquet)")
        List<String> data;
        @Option(names = "--mmlu", paramLabel = "DIR", description = "MMLU directory: test/<subject>_test.csv, dev/<subject>_dev.csv")
        String mmlu;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    @Option(names = "--metric", paramLabel = "M", split = ",", description = "with --data: exact-match, loss, or both (comma-separated); default both")
    List<String> metrics;
    @Option(names = "--format", paramLabel = "F", description = "with --data: alpaca, flan or auto (per file from its first record); default auto")
    String format = "auto";
    @Option(names = "--shots", paramLabel = "K", description = "with --mmlu: dev examples before each question (0 or 5 in the paper); default 5")
    int shots = 5;
    @Option(names = "--max-prompt-tokens", paramLabel = "N", description = "with --mmlu: drop shots until a prompt fits; default 2048")
    int maxPromptTokens = 2048;
    @Option(names = "--max-new-tokens", paramLabel = "N", description = "exact match: generation limit per record; default 128")
    int maxNewTokens = 128;
    @Option(names = "--out", required = true, paramLabel = "FILE", description = "result JSON (refused if it exists, unless --overwrite)")
    String out;
    @Option(names = "--overwrite", description = "replace an existing --out file")
    boolean overwrite;
    @Option(names = "--master", paramLabel = "URL", description = "run as a Spark job on this master (local[4], yarn, spark://..)")
    String master;
    @Option(names = "--partitions", paramLabel = "N", description = "Spark tasks; default spark.default.parallelism")
    Integer partitions;
    @Option(names = "--conf", paramLabel = "KEY=VALUE", description = "extra Spark setting (repeatable)")
    Map<String, String> conf = new LinkedHashMap<>();
    @Option(names = "--device", paramLabel = "D", description = "auto (a Spark task's GPU when it has one, else the CPU), cpu, gpu or gpu:N; default auto")
    String device = "auto";
    @Option(names = "--precision", paramLabel = "P", description = "auto (bf16 on a GPU, fp32 on the CPU), fp32 or bf16; default auto")
    String precision = "auto";
    @Option(names = "--threads", paramLabel = "N", description = "CPU threads when running here; default all processors")
    int threads = Runtime.getRuntime().availableProcessors();
    @Option(names = "--batch-size", paramLabel = "N", description = "exact match: records generated together; default 8")
    int batchSize = 8;

    @Override
    public Integer call() throws Exception {
        PrintWriter console = spec.commandLine().getOut();
        EvalTask task;
        Precision p;
        try {                                                      // bad flags fail before anything is read (exit 2)
            task = checkSettings();
            p = precision.trim().equalsIgnoreCase("auto") ? null : Precision.parse(precision, "--precision");
        } catch (IllegalArgumentException e) {
            throw new InvalidSettingsException(e.getMessage());
        }
        SparkConf sparkConf = new SparkConf();
        conf.forEach(sparkConf::set);
        String sparkMaster = master != null ? master : sparkConf.get("spark.master", null);
        if (sparkMaster == null) {
            Configuration hadoop = new Configuration();
            ResultFile.checkWritable(out, overwrite, hadoop);
            Prepared prepared = prepare(hadoop, task);
            List<EvalOutcome> outcomes;
            try (var backend = Backends.open(Backends.resolve(device, null), p, threads)) {
                InferenceModel m = InferenceModel.load(model, adapter, backend, new org.qalora.quant.io.HadoopPaths(hadoop));
                console.println("qalora eval: " + prepared.items().size() + " items on " + backend.name());
                console.flush();
                outcomes = EvalRunner.local(m, prepared.task(), prepared.items(), batchSize,
                        line -> System.err.println("qalora eval: " + line));
            }
            return finish(console, prepared, hadoop, outcomes);
        }
        SparkSettings.apply(sparkConf, sparkMaster, "qalora-eval");
        // A session that is already running (an application calling this command) is used and left running.
        boolean ownSession = SparkSession.getDefaultSession().isEmpty();
        SparkSession spark = SparkSession.builder().config(sparkConf).getOrCreate();
        try {
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            Configuration hadoop = jsc.hadoopConfiguration();
            ResultFile.checkWritable(out, overwrite, hadoop);
            // A task's CPU threads, as training takes them: spark.task.cpus on a cluster, every core in local mode.
            int taskThreads = spark.sparkContext().isLocal() ? Runtime.getRuntime().availableProcessors()
                    : Integer.parseInt(spark.conf().get("spark.task.cpus", "1"));
            ModelSpec ms = new ModelSpec(model, adapter, device, p, taskThreads, new ShippedHadoopConf(hadoop));
            Prepared prepared = prepare(hadoop, task);
            int tasks = partitions != null ? partitions : jsc.defaultParallelism();
            console.println("qalora eval: " + prepared.items().size() + " items on Spark "
                    + spark.sparkContext().master() + " in up to " + tasks + " tasks");
            console.flush();
            return finish(console, prepared, hadoop,
                    EvalRunner.spark(jsc, ms, prepared.task(), prepared.items(), batchSize, tasks));
        } finally {
            if (ownSession) {
                spark.stop();
            }
        }
    }

    /** The items and what turns their outcomes into the result. */
    private record Prepared(List<EvalItem> items, RecordEval records, MmluEval mmlu, TextTokenizer tokenizer,
                            EvalTask task) {}

    private EvalTask checkSettings() {
        if (batchSize < 1) {
            throw new IllegalArgumentException("--batch-size must be >= 1, got " + batchSize);
        }
        if (partitions != null && partitions < 1) {
            throw new IllegalArgumentException("--partitions must be >= 1, got " + partitions);
        }
        Backends.checkRequested(device);
        if (source.mmlu != null) {
            if (metrics != null) {
                throw new IllegalArgumentException("--metric applies to --data; --mmlu always measures accuracy");
            }
            if (shots < 0) {
                throw new IllegalArgumentException("--shots must be >= 0, got " + shots);
            }
            if (maxPromptTokens < 1) {
                throw new IllegalArgumentException("--max-prompt-tokens must be >= 1, got " + maxPromptTokens);
            }
            return null; // made once the tokenizer gives the choice tokens
        }
        boolean loss = false, exact = false;
        for (String m : metrics == null ? List.of("exact-match", "loss") : metrics) {
            switch (m.trim().toLowerCase(Locale.ROOT)) {
                case "loss" -> loss = true;
                case "exact-match" -> exact = true;
                default -> throw new IllegalArgumentException("--metric '" + m + "' is not one of exact-match, loss");
            }
        }
        RecordFormat.parse(format);
        return new EvalTask(loss, exact, maxNewTokens, -1, null);
    }

    private Prepared prepare(Configuration hadoop, EvalTask task) throws java.io.IOException {
        TextTokenizer tok = ModelTokenizer.open(model, tokenizer, hadoop);
        if (source.mmlu != null) {
            MmluEval e = MmluEval.build(MmluData.read(source.mmlu, shots, hadoop), shots, tok, maxPromptTokens);
            return new Prepared(e.items(), null, e, tok, new EvalTask(false, false, 1, -1, e.choiceTokenIds()));
        }
        RecordEval e = RecordEval.read(source.data, RecordFormat.parse(format), tok, ExampleEncoder.Settings.QALORA,
                hadoop);
        return new Prepared(e.items(), e, null, tok, new EvalTask(task.loss(), task.generate(), task.maxNewTokens(),
                tok.eosId(), null));
    }

    private int finish(PrintWriter console, Prepared prepared, Configuration hadoop, List<EvalOutcome> outcomes) throws java.io.IOException {
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("model", model);
        result.put("adapter", adapter);
        String line;
        if (prepared.mmlu() != null) {
            result.put("mmlu", source.mmlu);
            Map<String, Object> r = prepared.mmlu().summarize(outcomes);
            result.putAll(r);
            line = String.format(Locale.ROOT, "accuracy %.4f (%s of %s questions, %d shots)", (double) r.get("accuracy"),
                    r.get("correct"), r.get("questions"), shots);
        } else {
            result.put("data", source.data);
            Map<String, Object> r = prepared.records().summarize(outcomes, prepared.tokenizer(), prepared.task());
            result.putAll(r);
            line = "records " + r.get("records") + (r.get("exact_match") == null ? "" : String.format(Locale.ROOT,
                    ", exact match %.4f", (double) r.get("exact_match"))) + (r.get("loss") == null ? ""
                    : String.format(Locale.ROOT, ", loss %.6f", (double) r.get("loss")));
        }
        ResultFile.writeJson(out, result, overwrite, hadoop);
        console.println("qalora eval: wrote " + out + ": " + line);
        console.flush();
        return 0;
    }
}
