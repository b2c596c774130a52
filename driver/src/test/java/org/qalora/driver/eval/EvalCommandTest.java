package org.qalora.driver.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.mmlu.MmluData;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.tokenize.EncodedExample;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.quant.testing.ShardedCopy;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.generate.Generator;
import org.qalora.worker.generate.InferenceModel;
import org.qalora.worker.generate.Sampling;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaPass;

/**
 * {@code qalora eval} on the fixture GPTQ model and adapter (512-piece tokenizer): the loss is the token-weighted
 * mean, exact match counts outputs equal to the greedy generation, MMLU predictions are the argmax of the choice
 * logits of a full forward, and Spark local mode reports the same numbers as the local loop.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class EvalCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MODEL = Fixtures.tinyLlamaGptq().toString();
    private static final String ADAPTER = Fixtures.tinyLlamaAdapter().toString();
    private static final String TOK = CliRun.tinyTokenizer().toString();
    private static final CpuBackend BE = new CpuBackend(2);
    private static final InferenceModel M = InferenceModel.load(MODEL, ADAPTER, BE, HadoopPaths.defaults());

    @TempDir
    static Path tmp;

    @AfterAll
    static void close() { BE.close(); }

    private static TextTokenizer tokenizer() throws Exception {
        return TextTokenizer.open(TOK, new Configuration());
    }

    private static List<String> args(String... more) {
        List<String> a = new ArrayList<>(List.of("eval", "--model", MODEL, "--adapter", ADAPTER, "--tokenizer", TOK,
                "--threads", "2"));
        a.addAll(List.of(more));
        return a;
    }

    private static CliRun run(List<String> args) {
        return CliRun.of(args.toArray(new String[0]));
    }

    /**
     * Four Alpaca records: the first two have as output (padded with whitespace) the model's own greedy
     * continuation of their prompt, the other two their sample outputs.
     */
    private static Path dataWithTwoExactMatches(int maxNewTokens) throws Exception {
        ArrayNode sample = (ArrayNode) JSON.readTree(CliRun.repo().resolve("samples/alpaca-sample.json").toFile());
        TextTokenizer tok = tokenizer();
        ArrayNode data = JSON.createArrayNode();
        for (int i = 0; i < 4; i++) {
            ObjectNode r = ((ObjectNode) sample.get(i)).deepCopy();
            if (i < 2) {
                String source = AlpacaTemplate.QALORA.source(new SourceRecord("r", r.get("instruction").asText(),
                        r.get("input").asText(), "x"));
                int[] gen = M.generator().generate(List.of(tok.encode(source, true)),
                        new Generator.Settings(maxNewTokens, tok.eosId(), Sampling.GREEDY, 1), null).get(0);
                r.put("output", "  " + tok.decode(gen) + " \n");
            }
            data.add(r);
        }
        Path p = tmp.resolve("data-" + maxNewTokens + ".json");
        JSON.writeValue(p.toFile(), data);
        return p;
    }

    /** Sum of target-token losses and target count of one record, straight from the training forward. */
    private static double[] recordLoss(SourceRecord r) throws Exception {
        EncodedExample e = new ExampleEncoder(tokenizer(), ExampleEncoder.Settings.QALORA)
                .encode(AlpacaTemplate.QALORA.source(r), r.output());
        int t = e.numTokens();
        ActivationPlan plan = new ActivationPlan(M.model(), M.adapter().config(), 1, t, false, false);
        LlamaPass.forward(M.model(), M.adapter(), plan, e.inputIds(), 0, null);
        return new double[] {LlamaPass.loss(M.model(), plan, LlamaPass.shiftedTargets(e.labels(), 1, t)),
                e.numTargetTokens()};
    }

    @Test
    void recordsGiveTheTokenWeightedLossAndExactMatchAndSparkAgrees() throws Exception {
        Path data = dataWithTwoExactMatches(6);
        Path out = tmp.resolve("records.json");
        CliRun r = run(args("--data", data.toString(), "--max-new-tokens", "6", "--batch-size", "3", "--out",
                out.toString()));
        assertEquals(0, r.code(), r.err());
        JsonNode res = JSON.readTree(out.toFile());
        assertTrue(r.out().contains("qalora eval: wrote " + out + ": records 4, exact match 0.5000, loss "), r.out());
        assertEquals(4, res.get("records").asInt());
        assertEquals(0.5, res.get("exact_match").asDouble());
        assertEquals(2, res.get("exact_matches").asInt());
        double sum = 0, tokens = 0, meanOfMeans = 0;
        JsonNode records = JSON.readTree(data.toFile());
        for (JsonNode j : records) {
            double[] l = recordLoss(new SourceRecord("r", j.get("instruction").asText(), j.get("input").asText(),
                    j.get("output").asText()));
            sum += l[0];
            tokens += l[1];
            meanOfMeans += l[0] / l[1] / records.size();
        }
        assertEquals(sum / tokens, res.get("loss").asDouble(), 1e-12);
        assertEquals((long) tokens, res.get("target_tokens").asLong());
        assertTrue(Math.abs(meanOfMeans - sum / tokens) > 1e-4, "the records' lengths differ: the two means should too");

        Path sparkOut = tmp.resolve("records-spark.json");
        CliRun s = run(args("--data", data.toString(), "--max-new-tokens", "6", "--batch-size", "3", "--out",
                sparkOut.toString(), "--master", "local[2]", "--partitions", "2",
                "--conf", "spark.ui.enabled=false"));
        assertEquals(0, s.code(), s.err());
        assertEquals(res, JSON.readTree(sparkOut.toFile()), "Spark local mode reports the local loop's numbers");
    }

    /** The model as HF shards (index + files) evaluates to exactly the single file's result. */
    @Test
    void aShardedModelEvaluatesAsTheSingleFile() throws Exception {
        Path data = dataWithTwoExactMatches(4);
        Path sharded = ShardedCopy.of(Fixtures.tinyLlamaGptq(), tmp.resolve("sharded"), 50_000);
        Path single = tmp.resolve("single.json"), shards = tmp.resolve("sharded.json");
        assertEquals(0, run(args("--data", data.toString(), "--out", single.toString())).code());
        List<String> a = args("--data", data.toString(), "--out", shards.toString());
        a.set(a.indexOf(MODEL), sharded.toString());
        CliRun r = run(a);
        assertEquals(0, r.code(), r.err());
        JsonNode x = JSON.readTree(single.toFile()), y = JSON.readTree(shards.toFile());
        assertEquals(x.get("loss"), y.get("loss"));
        assertEquals(x.get("exact_match"), y.get("exact_match"));
    }

    @Test
    void oneMetricLeavesTheOtherNull() throws Exception {
        Path data = dataWithTwoExactMatches(4);
        Path out = tmp.resolve("loss-only.json");
        CliRun r = run(args("--data", data.toString(), "--metric", "loss", "--out", out.toString()));
        assertEquals(0, r.code(), r.err());
        JsonNode res = JSON.readTree(out.toFile());
        assertTrue(res.get("exact_match").isNull());
        assertTrue(res.get("loss").asDouble() > 0);
    }

    @Test
    void mmluPredictsTheLargestChoiceLogitOfTheFullForward() throws Exception {
        Path mmlu = CliRun.repo().resolve("samples/mmlu-sample");
        for (int shots : new int[] {0, 5}) {
            Path out = tmp.resolve("mmlu-" + shots + ".json");
            CliRun r = run(args("--mmlu", mmlu.toString(), "--shots", Integer.toString(shots), "--out",
                    out.toString()));
            assertEquals(0, r.code(), r.err());
            JsonNode res = JSON.readTree(out.toFile());
            // the expectation, from the training forward (no cache) over each prompt
            MmluData data = MmluData.read(mmlu.toString(), shots, new Configuration());
            MmluEval e = MmluEval.build(data, shots, tokenizer(), 2048);
            int[] choices = e.choiceTokenIds();
            int i = 0, correct = 0;
            for (var subject : data.test().values()) {
                for (var q : subject) {
                    float[] last = lastLogits(e.items().get(i++).prompt());
                    float[] c = new float[4];
                    for (int k = 0; k < 4; k++) {
                        c[k] = last[choices[k]];
                    }
                    correct += MmluEval.prediction(c) == q.answerIndex() ? 1 : 0;
                }
            }
            assertEquals(8, res.get("questions").asInt());
            assertEquals(correct, res.get("correct").asInt(), "shots " + shots);
            assertEquals(correct / 8.0, res.get("accuracy").asDouble());
            assertEquals(shots, res.get("shots").asInt());
            assertEquals(List.of("astronomy", "computer_security"), fieldNames(res.get("subjects")));
            int sum = res.get("subjects").get("astronomy").get("correct").asInt()
                    + res.get("subjects").get("computer_security").get("correct").asInt();
            assertEquals(correct, sum);
            if (shots == 5) {
                Path sparkOut = tmp.resolve("mmlu-spark.json");
                CliRun s = run(args("--mmlu", mmlu.toString(), "--out", sparkOut.toString(), "--master", "local[2]",
                        "--conf", "spark.ui.enabled=false"));
                assertEquals(0, s.code(), s.err());
                assertEquals(res, JSON.readTree(sparkOut.toFile()));
            }
        }
    }

    private static float[] lastLogits(int[] ids) {
        int v = M.model().dims().vocab(), t = ids.length;
        ActivationPlan plan = new ActivationPlan(M.model(), M.adapter().config(), 1, t, false, false);
        LlamaPass.forward(M.model(), M.adapter(), plan, ids, 0, null);
        return Arrays.copyOfRange(LlamaPass.logits(M.model(), plan), (t - 1) * v, t * v);
    }

    private static List<String> fieldNames(JsonNode n) {
        List<String> names = new ArrayList<>();
        n.fieldNames().forEachRemaining(names::add);
        return names;
    }

    @Test
    void refusalsNameWhatIsWrong() throws Exception {
        Path out = Files.writeString(tmp.resolve("exists.json"), "{}");
        Path mmlu = CliRun.repo().resolve("samples/mmlu-sample");
        CliRun exists = run(args("--mmlu", mmlu.toString(), "--out", out.toString()));
        assertEquals(2, exists.code(), "refused before any work");
        assertEquals("qalora eval: " + out + " already exists: pass --overwrite to replace it\n", exists.err());
        assertEquals("{}", Files.readString(out));
        CliRun metric = run(args("--mmlu", mmlu.toString(), "--metric", "loss", "--out", tmp.resolve("m.json").toString()));
        assertEquals("qalora eval: --metric applies to --data; --mmlu always measures accuracy\n", metric.err());
        Path data = Files.writeString(tmp.resolve("bad.jsonl"),
                "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"output\": 5}\n");
        CliRun bad = run(args("--data", data.toString(), "--out", tmp.resolve("b.json").toString()));
        assertEquals(1, bad.code());
        assertTrue(bad.err().startsWith("qalora eval: " + data + ":2: "), bad.err());
        assertTrue(bad.err().contains("\"output\" must be a string, got number"), bad.err());
        CliRun bogus = run(args("--data", data.toString(), "--metric", "bleu", "--out", tmp.resolve("c.json").toString()));
        assertEquals("qalora eval: --metric 'bleu' is not one of exact-match, loss\n", bogus.err());
        assertEquals(2, bogus.code());
        assertFalse(Files.exists(tmp.resolve("b.json")) || Files.exists(tmp.resolve("c.json")));
        CliRun none = run(args("--out", tmp.resolve("d.json").toString()));
        assertNotEquals(0, none.code());
        assertTrue(none.err().contains("--data") && none.err().contains("--mmlu"), none.err());
    }
}
