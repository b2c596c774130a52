package org.qalora.driver.cli;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.qalora.driver.eval.Evaluation;
import org.qalora.driver.eval.ResultFile;
import org.qalora.driver.spark.SparkSettings;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code qalora eval}: loss and exact match on Alpaca / FLAN records, or MMLU accuracy, of a model (optionally with
 * an adapter), written to a JSON file. Runs here, or as a Spark job with {@code --master} (or under spark-submit):
 * the items are tokenized on the driver, sharded across executors that load the model once each, and the numbers
 * are the ones a local run gives. The evaluation itself is {@link Evaluation}; this class is its flags and the file.
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
    int shots = Evaluation.DEFAULT_SHOTS;
    @Option(names = "--max-prompt-tokens", paramLabel = "N", description = "with --mmlu: drop shots until a prompt fits; default 2048")
    int maxPromptTokens = Evaluation.DEFAULT_MAX_PROMPT_TOKENS;
    @Option(names = "--max-new-tokens", paramLabel = "N", description = "exact match: generation limit per record; default 128")
    int maxNewTokens = Evaluation.DEFAULT_MAX_NEW_TOKENS;
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
    int batchSize = Evaluation.DEFAULT_BATCH_SIZE;

    @Override
    public Integer call() throws Exception {
        PrintWriter console = spec.commandLine().getOut();
        Consumer<String> say = line -> {
            console.println("qalora eval: " + line);
            console.flush();
        };
        Evaluation evaluation = new Evaluation(model, adapter, tokenizer, source.data, source.mmlu, metrics, format,
                shots, maxPromptTokens, maxNewTokens, device, precision, batchSize, partitions);
        Evaluation.Checked checked = evaluation.check();     // bad flags fail before anything is read (exit 2)
        SparkConf sparkConf = new SparkConf();
        conf.forEach(sparkConf::set);
        String sparkMaster = master != null ? master : sparkConf.get("spark.master", null);
        if (sparkMaster == null) {
            Configuration hadoop = new Configuration();
            ResultFile.checkWritable(out, overwrite, hadoop);
            return finish(say, hadoop, evaluation.runHere(hadoop, checked, threads, say,
                    line -> System.err.println("qalora eval: " + line)));
        }
        SparkSettings.apply(sparkConf, sparkMaster, "qalora-eval");
        // A session that is already running (an application calling this command) is used and left running.
        boolean ownSession = SparkSession.getDefaultSession().isEmpty();
        SparkSession spark = SparkSession.builder().config(sparkConf).getOrCreate();
        try {
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            Configuration hadoop = jsc.hadoopConfiguration();
            ResultFile.checkWritable(out, overwrite, hadoop);
            return finish(say, hadoop, evaluation.runOnSpark(jsc, checked, say));
        } finally {
            if (ownSession) {
                spark.stop();
            }
        }
    }

    private int finish(Consumer<String> say, Configuration hadoop, Map<String, Object> result) throws java.io.IOException {
        ResultFile.writeJson(out, result, overwrite, hadoop);
        say.accept("wrote " + out + ": " + Evaluation.summary(result));
        return 0;
    }
}
