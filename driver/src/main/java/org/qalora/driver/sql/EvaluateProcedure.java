package org.qalora.driver.sql;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainSetting.Kind;
import org.qalora.driver.eval.Evaluation;
import org.qalora.driver.eval.ResultFile;
import org.slf4j.LoggerFactory;

/**
 * {@code CALL qalora.system.evaluate(model => '..', data => '..')} or {@code (model => '..', mmlu => '..')}:
 * {@code qalora eval} as a Spark job on the calling session ({@link Evaluation#runOnSpark}, the numbers of the
 * command). Records give one row (records, exact_match, loss: null when not measured); MMLU gives one row per subject
 * and one for {@code all}. With {@code out => '..'} the command's JSON result file is written too.
 */
final class EvaluateProcedure extends QaloraProcedure {
    static final String NAME = "evaluate";

    static final StructType RECORDS = new StructType()
            .add("model", DataTypes.StringType, false)
            .add("adapter", DataTypes.StringType, true)
            .add("records", DataTypes.IntegerType, false)
            .add("exact_match", DataTypes.DoubleType, true)
            .add("loss", DataTypes.DoubleType, true);

    static final StructType MMLU = new StructType()
            .add("model", DataTypes.StringType, false)
            .add("adapter", DataTypes.StringType, true)
            .add("subject", DataTypes.StringType, false)
            .add("accuracy", DataTypes.DoubleType, false)
            .add("correct", DataTypes.IntegerType, false)
            .add("questions", DataTypes.IntegerType, false);

    EvaluateProcedure() {
        super(NAME, "evaluate a model (and adapter) on records (loss, exact match) or MMLU (accuracy) with Spark tasks");
    }

    @Override
    List<SqlParameter> parameters() {
        return List.of(
                new SqlParameter("model", Kind.STRING, true, "HF, GPTQ or merged model directory (any Hadoop path)"),
                new SqlParameter("adapter", Kind.STRING, false, "PEFT QA-LoRA adapter directory"),
                new SqlParameter("data", Kind.STRINGS, false, "Alpaca or FLAN records (JSON, JSONL, Parquet); "
                        + "exactly one of data and mmlu"),
                new SqlParameter("mmlu", Kind.STRING, false, "MMLU directory: test/<subject>_test.csv, dev/..._dev.csv"),
                new SqlParameter("metric", Kind.STRINGS, false, "with data: exact-match, loss, or both; default both"),
                new SqlParameter("format", Kind.STRING, false, "with data: alpaca, flan or auto; default auto"),
                new SqlParameter("shots", Kind.INT, false, "with mmlu: dev examples before each question; default "
                        + Evaluation.DEFAULT_SHOTS),
                new SqlParameter("max_prompt_tokens", Kind.INT, false, "with mmlu: drop shots until a prompt fits; "
                        + "default " + Evaluation.DEFAULT_MAX_PROMPT_TOKENS),
                new SqlParameter("max_new_tokens", Kind.INT, false, "exact match: generation limit per record; default "
                        + Evaluation.DEFAULT_MAX_NEW_TOKENS),
                new SqlParameter("batch_size", Kind.INT, false, "exact match: records generated together; default "
                        + Evaluation.DEFAULT_BATCH_SIZE),
                new SqlParameter("partitions", Kind.INT, false, "Spark tasks; default spark.default.parallelism"),
                new SqlParameter("tokenizer", Kind.STRING, false, "tokenizer.json; default the model directory's"),
                new SqlParameter("device", Kind.STRING, false, "auto, cpu, gpu or gpu:N; default auto"),
                new SqlParameter("precision", Kind.STRING, false, "auto, fp32 or bf16; default auto"),
                new SqlParameter("out", Kind.STRING, false, "also write the result JSON here (must not exist)"));
    }

    @Override
    @SuppressWarnings("unchecked")
    ResultRows call(SparkSession spark, Map<String, Object> args) {
        Evaluation evaluation = new Evaluation((String) args.get("model"), (String) args.get("adapter"),
                (String) args.get("tokenizer"), (List<String>) args.get("data"), (String) args.get("mmlu"),
                (List<String>) args.get("metric"), (String) args.getOrDefault("format", "auto"),
                (int) args.getOrDefault("shots", Evaluation.DEFAULT_SHOTS),
                (int) args.getOrDefault("max_prompt_tokens", Evaluation.DEFAULT_MAX_PROMPT_TOKENS),
                (int) args.getOrDefault("max_new_tokens", Evaluation.DEFAULT_MAX_NEW_TOKENS),
                (String) args.getOrDefault("device", "auto"), (String) args.getOrDefault("precision", "auto"),
                (int) args.getOrDefault("batch_size", Evaluation.DEFAULT_BATCH_SIZE), (Integer) args.get("partitions"));
        String out = (String) args.get("out");
        Evaluation.Checked checked;
        try {
            checked = evaluation.check();
        } catch (InvalidSettingsException e) {
            throw new InvalidSettingsException(callName() + ": " + e.getMessage());
        }
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Configuration hadoop = jsc.hadoopConfiguration();
        Consumer<String> log = LoggerFactory.getLogger(EvaluateProcedure.class)::info;
        Map<String, Object> result;
        try {
            if (out != null) {
                ResultFile.checkWritable(out, false, hadoop);
            }
            result = evaluation.runOnSpark(jsc, checked, log);
            if (out != null) {
                ResultFile.writeJson(out, result, false, hadoop);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(callName() + ": " + e.getMessage(), e);
        }
        log.accept(Evaluation.summary(result));
        return result.containsKey("mmlu") ? mmluRows(evaluation, result) : recordRows(evaluation, result);
    }

    private static ResultRows recordRows(Evaluation e, Map<String, Object> r) {
        return new ResultRows(RECORDS, new InternalRow[] {new GenericInternalRow(new Object[] {
                UTF8String.fromString(e.model()), utf8(e.adapter()), r.get("records"), r.get("exact_match"),
                r.get("loss")})});
    }

    @SuppressWarnings("unchecked")
    private static ResultRows mmluRows(Evaluation e, Map<String, Object> r) {
        List<InternalRow> rows = new ArrayList<>();
        Map<String, Map<String, Object>> subjects = (Map<String, Map<String, Object>>) r.get("subjects");
        subjects.forEach((subject, m) -> rows.add(mmluRow(e, subject, m)));
        rows.add(mmluRow(e, "all", r));
        return new ResultRows(MMLU, rows.toArray(InternalRow[]::new));
    }

    private static InternalRow mmluRow(Evaluation e, String subject, Map<String, Object> m) {
        return new GenericInternalRow(new Object[] {UTF8String.fromString(e.model()), utf8(e.adapter()),
                UTF8String.fromString(subject), m.get("accuracy"), m.get("correct"), m.get("questions")});
    }

    private static UTF8String utf8(String s) { return s == null ? null : UTF8String.fromString(s); }
}
