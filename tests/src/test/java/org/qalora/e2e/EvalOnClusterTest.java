package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.cli.QaloraCli;
import org.qalora.quant.testing.Fixtures;
import picocli.CommandLine;

/**
 * {@code qalora eval} as a Spark job on real executor JVMs ({@code local-cluster[2,1,1024]}) reading the model,
 * adapter, tokenizer and data from HDFS through a nameservice that only the job's settings define (so the Hadoop
 * configuration must reach the executors), against the same evaluation run locally on local copies: both forms
 * (records: loss and exact match; MMLU with 5 shots) must report identical numbers.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class EvalOnClusterTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    static Path base;
    private static TestCluster cluster;
    private static org.apache.spark.sql.SparkSession spark;
    private static final Path TINY_TOKENIZER = Fixtures.root().resolveSibling("reference").resolve("tiny-tokenizer");
    private static final Path SAMPLES = Fixtures.root().resolveSibling("samples");

    @BeforeAll
    static void start() throws Exception {
        cluster = new TestCluster(base);
        cluster.put(Fixtures.tinyLlamaGptq(), "/models/tiny-gptq");
        cluster.put(Fixtures.tinyLlamaAdapter(), "/models/adapter");
        cluster.put(TINY_TOKENIZER, "/tok");
        cluster.put(SAMPLES.resolve("alpaca-sample.json"), "/data/alpaca.json");
        cluster.put(SAMPLES.resolve("mmlu-sample"), "/data/mmlu");
        // One application for both evaluations: eval uses a running session and leaves it running.
        spark = org.apache.spark.sql.SparkSession.builder().config(cluster.sparkConf("EvalOnClusterTest")).getOrCreate();
    }

    @AfterAll
    static void stop() {
        TestCluster.stop(spark, cluster);
    }

    private static String hdfs(String path) {
        return "hdfs://" + TestCluster.NAMESERVICE + path;
    }

    private static int run(List<String> args, StringWriter out, StringWriter err) {
        CommandLine cli = QaloraCli.commandLine();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        return cli.execute(args.toArray(new String[0]));
    }

    /** Runs eval here on local files, then on the cluster on HDFS; returns both results without their paths. */
    private static JsonNode[] localAndCluster(String name, List<String> localSource, List<String> clusterSource)
            throws Exception {
        List<String> common = List.of("eval", "--device", "cpu", "--max-new-tokens", "4", "--batch-size", "5");
        Path localOut = base.resolve(name + "-local.json");
        List<String> local = new ArrayList<>(common);
        local.addAll(List.of("--model", Fixtures.tinyLlamaGptq().toString(), "--adapter",
                Fixtures.tinyLlamaAdapter().toString(), "--tokenizer", TINY_TOKENIZER.resolve("tokenizer.json").toString(),
                "--out", localOut.toString()));
        local.addAll(localSource);
        StringWriter out = new StringWriter(), err = new StringWriter();
        assertEquals(0, run(local, out, err), err.toString());

        List<String> onCluster = new ArrayList<>(common);
        onCluster.addAll(List.of("--model", hdfs("/models/tiny-gptq"), "--adapter", hdfs("/models/adapter"),
                "--tokenizer", hdfs("/tok/tokenizer.json"), "--out", hdfs("/out/" + name + ".json"),
                "--master", "local-cluster[2,1,1024]", "--partitions", "3"));
        onCluster.addAll(clusterSource);
        StringWriter cOut = new StringWriter(), cErr = new StringWriter();
        assertEquals(0, run(onCluster, cOut, cErr), cErr.toString());
        assertTrue(cOut.toString().contains("items on Spark local-cluster[2,1,1024] in up to 3 tasks"), cOut.toString());
        JsonNode c;
        try (var in = cluster.fs().open(new org.apache.hadoop.fs.Path(cluster.uri("/out/" + name + ".json")))) {
            c = JSON.readTree(in);
        }
        JsonNode l = JSON.readTree(localOut.toFile());
        for (String path : List.of("model", "adapter", "data", "mmlu")) {
            ((ObjectNode) l).remove(path);
            ((ObjectNode) c).remove(path);
        }
        return new JsonNode[] {l, c};
    }

    @Test
    void recordsOnTheClusterEqualTheLocalRun() throws Exception {
        JsonNode[] r = localAndCluster("records", List.of("--data", SAMPLES.resolve("alpaca-sample.json").toString()),
                List.of("--data", hdfs("/data/alpaca.json")));
        assertTrue(r[0].get("records").asInt() > 10 && r[0].get("loss").asDouble() > 0, r[0].toString());
        assertEquals(r[0], r[1]);
    }

    @Test
    void mmluOnTheClusterEqualsTheLocalRun() throws Exception {
        JsonNode[] r = localAndCluster("mmlu", List.of("--mmlu", SAMPLES.resolve("mmlu-sample").toString()),
                List.of("--mmlu", hdfs("/data/mmlu")));
        assertEquals(8, r[0].get("questions").asInt());
        assertEquals(r[0], r[1]);
    }

    /** The committed 512-piece tokenizer is what {@link SmallTokenizer} makes of the 32000-piece one. */
    @Test
    void theCommittedTinyTokenizerIsSmallTokenizersOutput() throws Exception {
        Path made = base.resolve("made/tokenizer.json");
        SmallTokenizer.write(Fixtures.tokenizer(), 512, made);
        assertEquals(JSON.readTree(TINY_TOKENIZER.resolve("tokenizer.json").toFile()), JSON.readTree(made.toFile()));
        assertEquals(Files.readString(Fixtures.tokenizer().resolveSibling("tokenizer_config.json")),
                Files.readString(TINY_TOKENIZER.resolve("tokenizer_config.json")));
    }
}
