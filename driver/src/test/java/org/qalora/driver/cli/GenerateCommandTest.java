package org.qalora.driver.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.driver.eval.CliRun;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.quant.testing.ShardedCopy;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.generate.Generator;
import org.qalora.worker.generate.InferenceModel;
import org.qalora.worker.generate.Sampling;

/** {@code qalora generate} on the fixture GPTQ model and adapter with the 512-piece tokenizer. */
class GenerateCommandTest {
    @TempDir
    Path tmp;

    private static final String MODEL = Fixtures.tinyLlamaGptq().toString();
    private static final String ADAPTER = Fixtures.tinyLlamaAdapter().toString();
    private static final String TOK = CliRun.tinyTokenizer().toString();

    private static String[] args(String... more) {
        List<String> a = new java.util.ArrayList<>(List.of("generate", "--model", MODEL, "--adapter", ADAPTER,
                "--tokenizer", TOK, "--threads", "2", "--max-new-tokens", "12"));
        a.addAll(List.of(more));
        return a.toArray(new String[0]);
    }

    /** The text the worker's generator gives for the prompt without the template: what the command must print. */
    private static String expected(String prompt, Sampling sampling) throws Exception {
        TextTokenizer tok = TextTokenizer.open(TOK, new org.apache.hadoop.conf.Configuration());
        try (CpuBackend be = new CpuBackend(2)) {
            InferenceModel m = InferenceModel.load(MODEL, ADAPTER, be, HadoopPaths.defaults());
            int[] out = m.generator().generate(List.of(tok.encode(prompt, true)),
                    new Generator.Settings(12, tok.eosId(), sampling, 8), null).get(0);
            return tok.decode(out);
        }
    }

    @Test
    void onePromptStreamsTheGreedyContinuation() throws Exception {
        CliRun r = CliRun.of(args("--prompt", "Name a color.", "--template", "none"));
        assertEquals(0, r.code(), r.err());
        assertEquals(expected("Name a color.", Sampling.GREEDY) + "\n", r.out());
    }

    @Test
    void aPromptsFileBecomesJsonlAndAnExistingOutIsRefused() throws Exception {
        Path prompts = Files.writeString(tmp.resolve("p.jsonl"),
                "{\"prompt\": \"Name a color.\"}\n\n{\"prompt\": \"Count to three.\"}\n");
        Path out = tmp.resolve("out.jsonl");
        String[] a = args("--prompts", prompts.toString(), "--template", "none", "--temperature", "0.9", "--top-p",
                "0.8", "--seed", "7", "--out", out.toString());
        CliRun r = CliRun.of(a);
        assertEquals(0, r.code(), r.err());
        assertEquals("qalora generate: wrote 2 generations to " + out + "\n", r.out());
        List<String> lines = Files.readAllLines(out);
        assertEquals(2, lines.size());
        JsonNode first = new ObjectMapper().readTree(lines.get(0));
        assertEquals("Name a color.", first.get("prompt").asText());
        // prompt 0 draws from stream (seed, 0) whatever else is in the file
        assertEquals(expected("Name a color.", new Sampling(0.9, 0.8, 7)), first.get("output").asText());
        String before = Files.readString(out);
        CliRun again = CliRun.of(a);
        assertEquals(2, again.code(), "refused before any work");
        assertEquals("qalora generate: " + out + " already exists: pass --overwrite to replace it\n", again.err());
        assertEquals(before, Files.readString(out), "untouched");
        List<String> withOverwrite = new java.util.ArrayList<>(List.of(a));
        withOverwrite.add("--overwrite");
        assertEquals(0, CliRun.of(withOverwrite.toArray(new String[0])).code());
        assertEquals(before, Files.readString(out), "seeded sampling: the same file again");
    }

    /** The model as HF shards (index + files) generates exactly what the single file does. */
    @Test
    void aShardedModelGeneratesAsTheSingleFile() throws Exception {
        Path sharded = ShardedCopy.of(Fixtures.tinyLlamaGptq(), tmp.resolve("sharded"), 50_000);
        List<String> a = new java.util.ArrayList<>(List.of(args("--prompt", "Name a color.", "--template", "none")));
        a.set(a.indexOf(MODEL), sharded.toString());
        CliRun r = CliRun.of(a.toArray(new String[0]));
        assertEquals(0, r.code(), r.err());
        assertEquals(expected("Name a color.", Sampling.GREEDY) + "\n", r.out());
    }

    @Test
    void theAlpacaTemplateIsTheDefault() throws Exception {
        CliRun r = CliRun.of(args("--prompt", "Name a color."));
        assertEquals(0, r.code(), r.err());
        String templated = "Below is an instruction that describes a task. Write a response that appropriately"
                + " completes the request.\n\n### Instruction:\nName a color.\n\n### Response: ";
        assertEquals(expected(templated, Sampling.GREEDY) + "\n", r.out());
    }

    @Test
    void badInputIsNamedByFileLineAndField() throws Exception {
        Path prompts = Files.writeString(tmp.resolve("bad.jsonl"), "{\"prompt\": \"ok\"}\n{\"text\": \"no\"}\n");
        CliRun r = CliRun.of(args("--prompts", prompts.toString()));
        assertEquals(1, r.code());
        assertEquals("qalora generate: " + prompts + ":2: field \"prompt\" is missing\n", r.err());
        Files.writeString(prompts, "{\"prompt\": 3}\n");
        assertTrue(CliRun.of(args("--prompts", prompts.toString())).err()
                .contains(prompts + ":1: field \"prompt\" must be a string, got number"));
        CliRun t = CliRun.of(args("--prompt", "x", "--temperature", "-1"));
        assertTrue(t.err().startsWith("qalora generate: temperature must be a finite number >= 0"), t.err());
        assertEquals(2, t.code());
        CliRun m = CliRun.of("generate", "--model", tmp.resolve("none").toString(), "--tokenizer", TOK, "--prompt", "x");
        assertEquals(1, m.code());
        assertFalse(m.err().isBlank());
    }
}
