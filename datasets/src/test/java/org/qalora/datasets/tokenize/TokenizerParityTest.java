package org.qalora.datasets.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qalora.datasets.TestFiles;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** DJL's tokenizer against the ids HF tokenizers produced for fixtures/tokenizer/tokenization.json. */
class TokenizerParityTest {

    static List<JsonNode> cases() throws IOException {
        JsonNode root = new ObjectMapper().readTree(TestFiles.tokenizerDir().resolve("tokenization.json").toFile());
        List<JsonNode> out = new ArrayList<>();
        root.path("cases").forEach(out::add);
        if (out.isEmpty()) {
            throw new IllegalStateException("no cases in tokenization.json");
        }
        return out;
    }

    private static int[] ints(JsonNode arr) {
        return IntStream.range(0, arr.size()).map(i -> arr.get(i).asInt()).toArray();
    }

    @ParameterizedTest
    @MethodSource("cases")
    void idsAndDecodeMatchHuggingFace(JsonNode c) {
        TextTokenizer tok = TestFiles.fixtureTokenizer();
        String text = c.get("text").asText();
        assertArrayEquals(ints(c.get("ids_with_bos")), tok.encode(text, true), "ids_with_bos of " + text);
        assertArrayEquals(ints(c.get("ids_no_special")), tok.encode(text, false), "ids_no_special of " + text);
        // the ids-only path against DJL's full Encoding path
        assertArrayEquals(tok.encodeWithDjlEncoding(text, true), tok.encode(text, true));
        assertArrayEquals(tok.encodeWithDjlEncoding(text, false), tok.encode(text, false));
        assertEquals(c.get("decoded").asText(), tok.decode(ints(c.get("ids_no_special"))),
                "decoded of " + text);
    }

    @Test
    void fixtureHasAllCaseKinds() throws IOException {
        assertEquals(10, cases().size());
    }

    @Test
    void specialTokensFromConfig() {
        TextTokenizer tok = TestFiles.fixtureTokenizer();
        assertEquals(1, tok.bosId());
        assertEquals(2, tok.eosId());
        assertEquals(0, tok.padId());
        assertEquals("</s>", tok.eosToken());
    }

    /** HF: tokenizer(output + "</s>", add_special_tokens=False) == ids_no_special(output) + [eos] for plain text. */
    @ParameterizedTest
    @MethodSource("cases")
    void targetWithEosIsTextIdsThenEos(JsonNode c) {
        TextTokenizer tok = TestFiles.fixtureTokenizer();
        String text = c.get("text").asText();
        int[] plain = ints(c.get("ids_no_special"));
        int[] expected = IntStream.concat(IntStream.of(plain), IntStream.of(2)).toArray();
        assertArrayEquals(expected, tok.encode(text + "</s>", false), "target ids of " + text);
    }

    /** The batch path prepare uses gives exactly the one-by-one ids, including truncation and masking. */
    @Test
    void batchEncodingEqualsOneByOne() throws IOException {
        TextTokenizer tok = TestFiles.fixtureTokenizer();
        List<JsonNode> cs = cases();
        String[] sources = cs.stream().map(c -> c.get("text").asText()).toArray(String[]::new);
        String[] targets = new String[sources.length];
        for (int i = 0; i < targets.length; i++) {
            targets[i] = sources[(i + 3) % sources.length];
        }
        for (ExampleEncoder.Settings s : List.of(ExampleEncoder.Settings.QALORA, new ExampleEncoder.Settings(7, 5, false),
                new ExampleEncoder.Settings(9, 3, true))) {
            ExampleEncoder enc = new ExampleEncoder(tok, s);
            EncodedExample[] batch = enc.encodeBatch(sources, targets);
            for (int i = 0; i < sources.length; i++) {
                EncodedExample one = enc.encode(sources[i], targets[i]);
                assertArrayEquals(one.inputIds(), batch[i].inputIds(), "input_ids " + i + " " + s);
                assertArrayEquals(one.labels(), batch[i].labels(), "labels " + i + " " + s);
                assertEquals(one.numTargetTokens(), batch[i].numTargetTokens());
            }
        }
    }
}
