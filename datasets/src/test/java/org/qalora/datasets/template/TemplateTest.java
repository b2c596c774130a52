package org.qalora.datasets.template;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.qalora.datasets.TestFiles;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.tokenize.EncodedExample;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TemplateTest {

    private static final SourceRecord NO_INPUT =
            new SourceRecord("t:1", "Give three tips for staying healthy.", "", "1. Eat well.");
    private static final SourceRecord WITH_INPUT =
            new SourceRecord("t:2", "Reverse the word.", "lamp", "pmal");

    @Test
    void alpacaWithoutInputIsQaloraPromptDict() {
        assertEquals("Below is an instruction that describes a task. Write a response that appropriately completes "
                + "the request.\n\n### Instruction:\nGive three tips for staying healthy.\n\n### Response: ",
                AlpacaTemplate.QALORA.source(NO_INPUT));
    }

    @Test
    void alpacaWithInputIsQaloraPromptDict() {
        assertEquals("Below is an instruction that describes a task, paired with an input that provides further "
                + "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                + "Reverse the word.\n\n### Input:\nlamp\n\n### Response: ", AlpacaTemplate.QALORA.source(WITH_INPUT));
    }

    @Test
    void stanfordVariantHasNoTrailingSpace() {
        assertTrue(AlpacaTemplate.STANFORD.source(WITH_INPUT).endsWith("### Response:"));
        assertEquals(AlpacaTemplate.QALORA.source(NO_INPUT), AlpacaTemplate.STANFORD.source(NO_INPUT) + " ");
    }

    /** The fixture's third case is exactly this prompt: the whole source tokenization is checked against HF. */
    @Test
    void templatedSourceTokenizesAsHuggingFace() throws Exception {
        JsonNode c = new ObjectMapper().readTree(TestFiles.tokenizerDir().resolve("tokenization.json").toFile())
                .path("cases").get(2);
        assertEquals(c.get("text").asText(), AlpacaTemplate.QALORA.source(NO_INPUT));
        int[] expectedSrc = IntStream.range(0, c.get("ids_with_bos").size())
                .map(i -> c.get("ids_with_bos").get(i).asInt()).toArray();
        TextTokenizer tok = TestFiles.fixtureTokenizer();
        EncodedExample ex = new ExampleEncoder(tok, ExampleEncoder.Settings.QALORA)
                .encode(AlpacaTemplate.QALORA.source(NO_INPUT), NO_INPUT.output());
        int s = expectedSrc.length;
        assertArrayEquals(expectedSrc, Arrays.copyOf(ex.inputIds(), s));
        assertEquals(28705, expectedSrc[s - 1], "the trailing space is a lone ▁ token");
        int[] tgt = tok.encode("1. Eat well.", false);
        assertArrayEquals(IntStream.concat(IntStream.of(tgt), IntStream.of(2)).toArray(),
                Arrays.copyOfRange(ex.inputIds(), s, ex.numTokens()));
        assertTrue(IntStream.range(0, s).allMatch(i -> ex.labels()[i] == -100));
        assertArrayEquals(Arrays.copyOfRange(ex.inputIds(), s, ex.numTokens()),
                Arrays.copyOfRange(ex.labels(), s, ex.numTokens()));
        assertEquals(tgt.length + 1, ex.numTargetTokens());
        // Stanford's prompt drops exactly that token.
        int[] stanford = tok.encode(AlpacaTemplate.STANFORD.source(NO_INPUT), true);
        assertArrayEquals(Arrays.copyOf(expectedSrc, s - 1), stanford);
    }

    @Test
    void truncationKeepsBeginningAndLongTargetLosesEos() {
        TextTokenizer tok = TestFiles.fixtureTokenizer();
        ExampleEncoder enc = new ExampleEncoder(tok, new ExampleEncoder.Settings(5, 3, false));
        EncodedExample ex = enc.encode("one two three four five six seven", "alpha beta gamma delta");
        int[] src = tok.encode("one two three four five six seven", true);
        int[] tgt = tok.encode("alpha beta gamma delta", false);
        assertArrayEquals(IntStream.concat(IntStream.of(Arrays.copyOf(src, 5)), IntStream.of(Arrays.copyOf(tgt, 3)))
                .toArray(), ex.inputIds());
        assertTrue(IntStream.of(ex.inputIds()).noneMatch(i -> i == 2), "truncated target has no EOS");
        assertEquals(3, ex.numTargetTokens());
    }

    @Test
    void trainOnSourceLabelsEverything() {
        EncodedExample ex = new ExampleEncoder(TestFiles.fixtureTokenizer(), new ExampleEncoder.Settings(64, 64, true))
                .encode("abc", "def");
        assertArrayEquals(ex.inputIds(), ex.labels());
        assertEquals(ex.numTokens(), ex.numTargetTokens());
    }

    @Test
    void templateFileWithAlpacaPromptDictEqualsBuiltIn() {
        String json = "{\"prompt_input\": \"Below is an instruction that describes a task, paired with an input that "
                + "provides further context. Write a response that appropriately completes the request.\\n\\n"
                + "### Instruction:\\n{instruction}\\n\\n### Input:\\n{input}\\n\\n### Response: \","
                + "\"prompt_no_input\": \"Below is an instruction that describes a task. Write a response that "
                + "appropriately completes the request.\\n\\n### Instruction:\\n{instruction}\\n\\n### Response: \"}";
        TemplateFile t = TemplateFile.parse(json.getBytes(StandardCharsets.UTF_8), "alpaca.json");
        assertEquals(AlpacaTemplate.QALORA.source(NO_INPUT), t.source(NO_INPUT));
        assertEquals(AlpacaTemplate.QALORA.source(WITH_INPUT), t.source(WITH_INPUT));
    }

    @Test
    void templateFileSinglePromptAndLiteralBraces() {
        TemplateFile t = TemplateFile.parse("{\"prompt\": \"{{json}} Q: {input}\\nA:\"}".getBytes(StandardCharsets.UTF_8),
                "q.json");
        assertEquals("{json} Q: what?\nA:", t.source(new SourceRecord("f:1", null, "what?", "x")));
    }

    @Test
    void templateFileErrorsNameFileAndKey() {
        var e = assertThrows(IllegalArgumentException.class, () -> TemplateFile.parse(
                "{\"prompt\": \"{question}\"}".getBytes(StandardCharsets.UTF_8), "bad.json"));
        assertTrue(e.getMessage().contains("bad.json") && e.getMessage().contains("{question}"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TemplateFile.parse(
                "{\"prompt_input\": \"{input}\"}".getBytes(StandardCharsets.UTF_8), "half.json"));
        assertTrue(e.getMessage().contains("prompt_no_input"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TemplateFile.parse(
                "{\"prompt\": \"a } b\"}".getBytes(StandardCharsets.UTF_8), "brace.json"));
        assertTrue(e.getMessage().contains("}}"), e.getMessage());
    }

    @Test
    void flanInputsAreVerbatim() {
        SourceRecord r = new SourceRecord("f:1", null, "Translate to French: cat\n\nOptions: ...", "chat");
        assertEquals(r.input(), new VerbatimTemplate().source(r));
    }
}
