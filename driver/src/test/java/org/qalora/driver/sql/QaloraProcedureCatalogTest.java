package org.qalora.driver.sql;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.config.TrainSetting;
import org.qalora.driver.eval.CliRun;

/**
 * The SQL procedures through {@code spark.sql(...)} on a plain local session configured only with
 * {@code spark.sql.catalog.qalora}: {@code CALL qalora.system.train} trains the bundled demo model on the bundled
 * sample data (as QaloraTrainingTest does) and returns the metrics rows, named and positional arguments and a mix of
 * the two bind to the right parameters (also when an argument is an expression, a variable or a parameter marker
 * that the analyzer resolves late: SPARK-61506), and bad calls are refused naming the parameter; then
 * {@code merge} remakes the published model from the run's adapter and {@code evaluate} gives {@code qalora eval}'s
 * numbers for it.
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class QaloraProcedureCatalogTest {
    private static final Path REPO = CliRun.repo();
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;
    private static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = SparkSession.builder().master("local[2]").appName("sql").config("spark.ui.enabled", "false")
                .config("spark.sql.catalog.qalora", QaloraProcedureCatalog.class.getName()).getOrCreate();
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    @Test
    void trainReturnsTheMetricsRowsAndAPositionalCallExtendsTheRun() throws Exception {
        String out = dir.resolve("sql-run").toString();
        // Named arguments, one of them an expression (concat) and one a CAST.
        Dataset<Row> two = spark.sql("CALL qalora.system.train(output => concat('" + dir + "', '/sql-run'), "
                + "rounds => CAST('2' AS INT), steps_per_round => 1, seed => 7)");
        List<Row> rows = two.collectAsList();
        assertEquals(2, rows.size(), "one row per round");
        Path published = latest(out);
        assertTrue(Files.isRegularFile(published.resolve("config.json")), "published model under " + out);
        // The columns and rows are those of the run's metrics, as TrainingResult.metrics() reads them.
        Dataset<Row> file = spark.read().json(out + "/checkpoints/metrics.jsonl").orderBy("round");
        assertEquals(Arrays.asList(file.schema().fieldNames()), Arrays.asList(two.schema().fieldNames()));
        assertEquals(file.collectAsList(), rows);
        assertEquals(1L, rows.get(0).getLong(rows.get(0).fieldIndex("round")));

        // Positional (output, model, data, eval_data, eval_every, tokenizer, rounds) then named: the same settings
        // with a third round extend the run (a constant schedule), and the third row comes back.
        List<Row> three = spark.sql("CALL qalora.system.train('" + out + "', NULL, NULL, NULL, NULL, NULL, 3, "
                + "steps_per_round => 1, seed => CAST(7 AS BIGINT))").collectAsList();
        assertEquals(3, three.size());
        assertEquals(rows, three.subList(0, 2), "the first two rounds are the committed ones, unchanged");

        mergeRemakesThePublishedModel(out);
        evaluateGivesTheCommandsNumbers(out);
    }

    /**
     * merge: the run's final adapter into the run's quantized base gives, file for file, the model that train
     * published (the same MergeJob); an existing output is refused.
     */
    private static void mergeRemakesThePublishedModel(String out) throws Exception {
        Path published = latest(out);
        String merged = dir.resolve("merged").toString();
        String call = "CALL qalora.system.merge(model => '" + out + "/base-quantized', adapter => '" + published
                + "/adapter', output => '" + merged + "')";
        List<Row> report = spark.sql(call).collectAsList();
        assertEquals(1, report.size());
        assertEquals(Path.of(merged), Path.of(java.net.URI.create(report.get(0).getString(0))));
        assertTrue(report.get(0).getInt(1) > 0, "merged projections");
        assertTrue(report.get(0).getDouble(2) < 1e-3, "merged vs adapter logits: " + report.get(0));
        try (var files = Files.list(Path.of(merged))) {
            List<Path> written = files.sorted().toList();
            assertTrue(written.stream().anyMatch(f -> f.getFileName().toString().endsWith(".safetensors")), "" + written);
            for (Path f : written) {
                assertArrayEquals(Files.readAllBytes(published.resolve(f.getFileName())), Files.readAllBytes(f),
                        f.getFileName() + " differs from the published model's");
            }
        }
        assertTrue(message(() -> spark.sql(call)).contains("output " + merged + " already exists"));
        assertTrue(message(() -> spark.sql(call.replace("')", "', max_shard_size => '5 gigs')")))
                .contains("max_shard_size"));
    }

    /** evaluate: the numbers `qalora eval` writes, as rows; records give one row, MMLU one per subject and all. */
    private static void evaluateGivesTheCommandsNumbers(String out) throws Exception {
        String model = dir.resolve("merged").toString();
        String data = REPO.resolve("samples/alpaca-sample.json").toString();
        Row loss = spark.sql("CALL qalora.system.evaluate('" + model + "', data => '" + data + "', metric => 'loss', "
                + "partitions => 2)").collectAsList().get(0);
        Path cliOut = dir.resolve("eval-cli.json");
        CliRun cli = CliRun.of("eval", "--model", model, "--data", data, "--metric", "loss", "--out", cliOut.toString());
        assertEquals(0, cli.code(), cli.err());
        JsonNode expected = JSON.readTree(cliOut.toFile());
        assertEquals(expected.get("records").asInt(), loss.getInt(loss.fieldIndex("records")));
        assertEquals(expected.get("loss").asDouble(), loss.getDouble(loss.fieldIndex("loss")));
        assertTrue(loss.isNullAt(loss.fieldIndex("exact_match")), "exact match was not asked for");

        Path sqlOut = dir.resolve("mmlu-sql.json");
        List<Row> mmlu = spark.sql("CALL qalora.system.evaluate(model => '" + model + "', mmlu => '"
                + REPO.resolve("samples/mmlu-sample") + "', shots => 0, out => '" + sqlOut + "')").collectAsList();
        JsonNode file = JSON.readTree(sqlOut.toFile());
        assertEquals(List.of("astronomy", "computer_security", "all"),
                mmlu.stream().map(r -> r.getString(r.fieldIndex("subject"))).toList());
        Row all = mmlu.get(2);
        assertEquals(file.get("accuracy").asDouble(), all.getDouble(all.fieldIndex("accuracy")));
        assertEquals(file.get("questions").asInt(), all.getInt(all.fieldIndex("questions")));
        assertEquals(file.at("/subjects/astronomy/correct").asInt(), mmlu.get(0).getInt(mmlu.get(0).fieldIndex("correct")));
        String both = message(() -> spark.sql("CALL qalora.system.evaluate(model => '" + model + "', data => '" + data
                + "', mmlu => '/x')"));
        assertTrue(both.contains("exactly one of --data"), both);
    }

    private static Path latest(String out) throws Exception {
        String name = Files.readString(Path.of(out, "LATEST")).trim();
        Path p = name.startsWith("file:") ? Path.of(java.net.URI.create(name)) : Path.of(name);
        return p.isAbsolute() ? p : Path.of(out).resolve(p);
    }

    @Test
    void theCatalogListsItsProcedures() {
        List<String> names = spark.sql("SHOW PROCEDURES IN qalora.system").collectAsList().stream()
                .map(r -> r.getString(r.fieldIndex("procedure_name"))).sorted().toList();
        assertEquals(List.of("evaluate", "merge", "train"), names);
        var e = assertThrows(Exception.class, () -> spark.sql("CALL qalora.system.tune(output => '/x')"));
        assertTrue(String.valueOf(e.getMessage()).contains("tune") || String.valueOf(e.getCause()).contains("tune"),
                e.toString());
    }

    /** Missing and unknown arguments: Spark's own errors, which name the parameter. */
    @Test
    void aMissingOrUnknownArgumentIsRefusedByName() {
        String missing = message(() -> spark.sql("CALL qalora.system.train(rounds => 1)"));
        assertTrue(missing.contains("REQUIRED_PARAMETER_NOT_FOUND") && missing.contains("`output`"), missing);
        String unknown = message(() -> spark.sql("CALL qalora.system.train(output => '/x', learning_rate => 1e-3)"));
        assertTrue(unknown.contains("UNRECOGNIZED_PARAMETER_NAME") && unknown.contains("`learning_rate`"), unknown);
        String twice = message(() -> spark.sql("CALL qalora.system.train('/x', output => '/y')"));
        assertTrue(twice.contains("`output`"), twice);
    }

    /** Wrong types are refused before any work, naming the parameter (Spark's implicit casts would not). */
    @Test
    void wrongTypesAreRefusedNamingTheParameter() {
        assertEquals("CALL qalora.system.train: rounds must be a number, got 'many'",
                message(() -> spark.sql("CALL qalora.system.train(output => '/x', rounds => 'many')")));
        assertEquals("CALL qalora.system.train: rounds must be a whole number, got 1.5",
                message(() -> spark.sql("CALL qalora.system.train(output => '/x', rounds => 1.5)")));
        assertEquals("CALL qalora.system.train: recompute must be true or false, got 'sometimes'",
                message(() -> spark.sql("CALL qalora.system.train(output => '/x', recompute => 'sometimes')")));
        assertEquals("CALL qalora.system.train: data takes an ARRAY<STRING> or a comma-separated STRING, got a value"
                + " of type MAP<STRING, STRING>",
                message(() -> spark.sql("CALL qalora.system.train(output => '/x', data => map('a', 'b'))")));
        assertEquals("CALL qalora.system.train: rounds takes a single value, got a value of type ARRAY<INT>",
                message(() -> spark.sql("CALL qalora.system.train(output => '/x', rounds => array(1, 2))")));
    }

    /**
     * Each argument reaches its own parameter however it is written (SPARK-61506 reports CALL mis-binding arguments
     * that resolve late): three distinct bad values come back each under its own setting, for literals, expressions,
     * casts, a session variable, a scalar subquery, named and positional parameter markers, positional and mixed.
     */
    @Test
    void argumentsBindToTheirParametersHoweverTheyAreWritten() {
        spark.sql("DECLARE OR REPLACE VARIABLE qalora_rounds INT DEFAULT -7");
        String expected = "CALL qalora.system.train: bad train settings (3 problems):" + System.lineSeparator()
                + "  - --rounds must be >= 1, got -7" + System.lineSeparator()
                + "  - --steps-per-round must be >= 1, got -3" + System.lineSeparator()
                + "  - --slots must be >= 1, got -5";
        String o = "'" + dir.resolve("never") + "'";
        for (String call : List.of(
                "output => " + o + ", rounds => -7, steps_per_round => -3, slots => -5",
                "slots => -5, steps_per_round => -3, output => " + o + ", rounds => -7",
                o + ", NULL, NULL, NULL, NULL, NULL, -7, -3, -5",
                o + ", NULL, NULL, NULL, NULL, NULL, -7, slots => -5, steps_per_round => -3",
                "output => concat(" + o + ", ''), rounds => CAST('-7' AS INT), steps_per_round => abs(3) * -1, "
                        + "slots => CAST(-5 AS BIGINT)",
                "concat(" + o + ", ''), slots => -5, rounds => qalora_rounds, steps_per_round => (SELECT -3)")) {
            assertEquals(expected, message(() -> spark.sql("CALL qalora.system.train(" + call + ")")), call);
        }
        assertEquals(expected, message(() -> spark.sql("CALL qalora.system.train(output => :out, rounds => :r, "
                + "steps_per_round => :s, slots => -5)", Map.of("out", o, "r", -7, "s", -3))));
        assertEquals(expected, message(() -> spark.sql("CALL qalora.system.train(?, NULL, NULL, NULL, NULL, NULL, ?, "
                + "slots => ?, steps_per_round => -3)", new Object[] {o, -7, -5})));
        // List arguments: an ARRAY<STRING> and a comma-separated string, each reaching its own setting.
        String lists = message(() -> spark.sql("CALL qalora.system.train(" + o + ", NULL, array('/nope/a.json', "
                + "'/nope/b.json'), eval_data => ' /nope/c.json,/nope/d.json ')"));
        for (String missing : List.of("--data file:/nope/a.json", "--data file:/nope/b.json",
                "--eval-data file:/nope/c.json", "--eval-data file:/nope/d.json")) {
            assertTrue(lists.contains(missing), missing + " in " + lists);
        }
    }

    /** Every setting a session may set is a parameter of train, named as the flag with underscores. */
    @Test
    void trainTakesEverySessionSettingAndNothingElse() {
        List<String> params = new TrainProcedure().parameters().stream().map(SqlParameter::name).sorted().toList();
        List<String> expected = new java.util.ArrayList<>(Arrays.stream(TrainSetting.values())
                .filter(TrainSetting::onSession).map(TrainProcedure::sqlName).toList());
        expected.add("force");
        assertEquals(expected.stream().sorted().toList(), params);
    }

    private static String message(org.junit.jupiter.api.function.Executable call) {
        Throwable t = assertThrows(Throwable.class, call);
        return t.getMessage();
    }
}
