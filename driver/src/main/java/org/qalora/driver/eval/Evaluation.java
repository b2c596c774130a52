package org.qalora.driver.eval;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.datasets.mmlu.MmluData;
import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.generate.InferenceModel;

/**
 * One evaluation of a model (and optional adapter): loss and exact match on Alpaca / FLAN records, or MMLU accuracy;
 * what {@code qalora eval} and {@code CALL qalora.system.evaluate} both run. {@link #check} refuses bad settings
 * before anything is read; the result is the map the command writes as JSON.
 *
 * @param data       records (exactly one of data and mmlu)
 * @param mmlu       an MMLU directory: test/<subject>_test.csv, dev/<subject>_dev.csv
 * @param metrics    with data: exact-match, loss or both; null: both
 * @param partitions Spark tasks; null: the context's default parallelism
 */
public record Evaluation(String model, String adapter, String tokenizer, List<String> data, String mmlu,
                         List<String> metrics, String format, int shots, int maxPromptTokens, int maxNewTokens,
                         String device, String precision, int batchSize, Integer partitions) {
    /** The defaults of {@code qalora eval} and {@code CALL qalora.system.evaluate}. */
    public static final int DEFAULT_SHOTS = 5;
    public static final int DEFAULT_MAX_PROMPT_TOKENS = 2048;
    public static final int DEFAULT_MAX_NEW_TOKENS = 128;
    public static final int DEFAULT_BATCH_SIZE = 8;

    /** The checked settings: what the items are scored for, and the requested precision (null: auto). */
    public record Checked(EvalTask task, Precision precision) {}

    /** Every setting checked before anything is read; an {@link InvalidSettingsException} (exit 2) names the flag. */
    public Checked check() {
        try {
            if ((data == null || data.isEmpty()) == (mmlu == null)) {
                throw new IllegalArgumentException("give exactly one of --data (records) and --mmlu (an MMLU directory)");
            }
            if (batchSize < 1) {
                throw new IllegalArgumentException("--batch-size must be >= 1, got " + batchSize);
            }
            if (partitions != null && partitions < 1) {
                throw new IllegalArgumentException("--partitions must be >= 1, got " + partitions);
            }
            Backends.checkRequested(device);
            Precision p = precision.trim().equalsIgnoreCase("auto") ? null : Precision.parse(precision, "--precision");
            if (mmlu != null) {
                if (metrics != null) {
                    throw new IllegalArgumentException("--metric applies to --data; --mmlu always measures accuracy");
                }
                if (shots < 0) {
                    throw new IllegalArgumentException("--shots must be >= 0, got " + shots);
                }
                if (maxPromptTokens < 1) {
                    throw new IllegalArgumentException("--max-prompt-tokens must be >= 1, got " + maxPromptTokens);
                }
                return new Checked(null, p); // the task is made once the tokenizer gives the choice tokens
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
            return new Checked(new EvalTask(loss, exact, maxNewTokens, -1, null), p);
        } catch (InvalidSettingsException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new InvalidSettingsException(e.getMessage());
        }
    }

    /** The items and what turns their outcomes into the result. */
    public record Prepared(List<EvalItem> items, RecordEval records, MmluEval mmluEval, TextTokenizer tokenizer,
                           EvalTask task) {}

    /** Reads the tokenizer and the items (on the driver: they are small). */
    public Prepared prepare(Configuration hadoop, Checked checked) throws IOException {
        TextTokenizer tok = ModelTokenizer.open(model, tokenizer, hadoop);
        if (mmlu != null) {
            MmluEval e = MmluEval.build(MmluData.read(mmlu, shots, hadoop), shots, tok, maxPromptTokens);
            return new Prepared(e.items(), null, e, tok, new EvalTask(false, false, 1, -1, e.choiceTokenIds()));
        }
        RecordEval e = RecordEval.read(data, RecordFormat.parse(format), tok, ExampleEncoder.Settings.QALORA, hadoop);
        EvalTask t = checked.task();
        return new Prepared(e.items(), e, null, tok, new EvalTask(t.loss(), t.generate(), t.maxNewTokens(),
                tok.eosId(), null));
    }

    /**
     * Scores the items in this JVM on {@code threads} CPU threads (or the requested GPU); {@code console} gets what
     * is being done, {@code progress} the batches as they finish.
     */
    public Map<String, Object> runHere(Configuration hadoop, Checked checked, int threads, Consumer<String> console,
                                       Consumer<String> progress) throws IOException {
        Prepared prepared = prepare(hadoop, checked);
        try (var backend = Backends.open(Backends.resolve(device, null), checked.precision(), threads)) {
            InferenceModel m = InferenceModel.load(model, adapter, backend, new HadoopPaths(hadoop));
            console.accept(prepared.items().size() + " items on " + backend.name());
            return result(prepared, EvalRunner.local(m, prepared.task(), prepared.items(), batchSize, progress));
        }
    }

    /** Scores the items as a Spark job: executors load the model once each; the numbers are {@link #runHere}'s. */
    public Map<String, Object> runOnSpark(JavaSparkContext jsc, Checked checked, Consumer<String> log)
            throws IOException {
        Configuration hadoop = jsc.hadoopConfiguration();
        // A task's CPU threads, as training takes them: spark.task.cpus on a cluster, every core in local mode.
        int taskThreads = jsc.sc().isLocal() ? Runtime.getRuntime().availableProcessors()
                : Integer.parseInt(jsc.getConf().get("spark.task.cpus", "1"));
        ModelSpec ms = new ModelSpec(model, adapter, device, checked.precision(), taskThreads,
                new ShippedHadoopConf(hadoop));
        Prepared prepared = prepare(hadoop, checked);
        int tasks = partitions != null ? partitions : jsc.defaultParallelism();
        log.accept(prepared.items().size() + " items on Spark " + jsc.sc().master() + " in up to " + tasks + " tasks");
        return result(prepared, EvalRunner.spark(jsc, ms, prepared.task(), prepared.items(), batchSize, tasks));
    }

    private Map<String, Object> result(Prepared prepared, List<EvalOutcome> outcomes) {
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("model", model);
        result.put("adapter", adapter);
        if (prepared.mmluEval() != null) {
            result.put("mmlu", mmlu);
            result.putAll(prepared.mmluEval().summarize(outcomes));
        } else {
            result.put("data", data);
            result.putAll(prepared.records().summarize(outcomes, prepared.tokenizer(), prepared.task()));
        }
        return result;
    }

    /** The one-line summary of a result ({@code qalora eval}'s last line). */
    public static String summary(Map<String, Object> r) {
        if (r.containsKey("mmlu")) {
            return String.format(Locale.ROOT, "accuracy %.4f (%s of %s questions, %d shots)", (double) r.get("accuracy"),
                    r.get("correct"), r.get("questions"), (int) r.get("shots"));
        }
        return "records " + r.get("records") + (r.get("exact_match") == null ? "" : String.format(Locale.ROOT,
                ", exact match %.4f", (double) r.get("exact_match"))) + (r.get("loss") == null ? ""
                : String.format(Locale.ROOT, ", loss %.6f", (double) r.get("loss")));
    }
}
