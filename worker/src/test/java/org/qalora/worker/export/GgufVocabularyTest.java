package org.qalora.worker.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.qalora.quant.testing.Fixtures;

/**
 * tokenizer.json as llama.cpp's "llama" vocabulary: types, merge-rank scores, special ids, padding to vocab_size,
 * and refusals of tokenizers llama.cpp would tokenize differently. (That llama.cpp then tokenizes like HF is checked
 * with the real engine in the tests module, LlamaCppEngineTest.)
 */
class GgufVocabularyTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static byte[] tokenizer() throws IOException {
        return Files.readAllBytes(Fixtures.root().resolve("tokenizer/tokenizer.json"));
    }

    private static byte[] config() throws IOException {
        return Files.readAllBytes(Fixtures.root().resolve("tokenizer/tokenizer_config.json"));
    }

    private static GgufVocabulary read(byte[] json, int vocab) throws IOException {
        return GgufVocabulary.read(json, config(), "tokenizer.json", vocab);
    }

    private static byte[] edit(java.util.function.Consumer<ObjectNode> change) throws IOException {
        ObjectNode t = (ObjectNode) JSON.readTree(tokenizer());
        change.accept(t);
        return JSON.writeValueAsBytes(t);
    }

    @Test
    void typesScoresAndSpecialIdsOfTheFixtureTokenizer() throws IOException {
        GgufVocabulary v = read(tokenizer(), 32000);
        assertEquals(32000, v.size());
        int[] types = v.types();
        assertEquals(GgufVocabulary.UNKNOWN, types[0]);
        assertEquals(GgufVocabulary.CONTROL, types[1]);
        assertEquals(GgufVocabulary.CONTROL, types[2]);
        for (int i = 3; i < 3 + 256; i++) {
            assertEquals(GgufVocabulary.BYTE, types[i], v.tokens().get(i));
        }
        assertEquals(GgufVocabulary.NORMAL, types[22557], v.tokens().get(22557));
        assertEquals("<0x0A>", v.tokens().get(13));
        assertEquals("\u2581Hello", v.tokens().get(22557));
        float[] s = v.scores();
        assertEquals(0f, s[261], "\u2581t is made by merge 0");                       // merges[0] = "▁ t"
        assertEquals(-58876f, s[259], "\u2581\u2581 is made by merge 58876, near the end of the list");
        assertTrue(s[22557] < s[261] && s[261] > s[262], "earlier merges score higher");
        assertEquals(0f, s[3], "a byte piece is made by no merge");
        assertEquals(0, v.mergeGaps(), "every split is a listed merge, in merged-piece order");
        assertEquals(1, v.bosId());
        assertEquals(2, v.eosId());
        assertEquals(0, v.unkId());
        assertEquals(-1, v.padId());
        assertTrue(v.addBos());
        assertFalse(v.addEos());
    }

    @Test
    void padsToTheModelsVocabularyAndRefusesALargerTokenizer() throws IOException {
        GgufVocabulary v = read(tokenizer(), 32003);
        assertEquals("[PAD3]", v.tokens().get(32002));
        assertEquals(GgufVocabulary.UNUSED, v.types()[32000]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> read(tokenizer(), 512));
        assertTrue(e.getMessage().contains("ids up to 31999") && e.getMessage().contains("vocab_size is 512"), e.getMessage());
    }

    @Test
    void countsMergesLlamaCppWouldOrderDifferently() throws IOException {
        // without "▁ t", llama.cpp could still join ▁ and t (▁t is a token) where HF cannot
        byte[] json = edit(t -> ((ArrayNode) t.path("model").path("merges")).remove(0));
        assertTrue(read(json, 32000).mergeGaps() >= 1);
    }

    @Test
    void noPostProcessorMeansNoBos() throws IOException {
        assertFalse(read(edit(t -> t.putNull("post_processor")), 32000).addBos());
    }

    @Test
    void refusesTokenizersLlamaCppWouldTokenizeDifferently() throws IOException {
        byte[] metaspace = edit(t -> {
            t.putNull("normalizer");
            t.putObject("pre_tokenizer").put("type", "Metaspace").put("replacement", "\u2581");
        });
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> read(metaspace, 32000));
        assertTrue(e.getMessage().startsWith("tokenizer.json: normalizer null with pre_tokenizer")
                && e.getMessage().contains("LLaMA-2 / Mistral kind"), e.getMessage());
        byte[] noFallback = edit(t -> ((ObjectNode) t.get("model")).put("byte_fallback", false));
        e = assertThrows(IllegalArgumentException.class, () -> read(noFallback, 32000));
        assertTrue(e.getMessage().contains("without byte_fallback"), e.getMessage());
        byte[] wordPiece = edit(t -> ((ObjectNode) t.get("model")).put("type", "WordPiece"));
        assertThrows(IllegalArgumentException.class, () -> read(wordPiece, 32000));
        byte[] badMerge = edit(t -> ((ArrayNode) t.path("model").path("merges")).insert(0, "\u2581 zzzq"));
        e = assertThrows(IllegalArgumentException.class, () -> read(badMerge, 32000));
        assertTrue(e.getMessage().contains("merge 0") && e.getMessage().contains("not in model.vocab"), e.getMessage());
        byte[] eosAfter = edit(t -> ((ArrayNode) t.path("post_processor").path("single")).insertObject(1)
                .putObject("SpecialToken").put("id", "</s>").put("type_id", 0));
        e = assertThrows(IllegalArgumentException.class, () -> read(eosAfter, 32000));
        assertTrue(e.getMessage().contains("at most BOS first and EOS last"), e.getMessage());
    }

    @Test
    void theShrunkTinyTokenizerHasGapsThatAreCounted() throws IOException {
        // reference/tiny-tokenizer keeps the first merges of the real one, so e.g. "▁the" is a token that HF makes
        // only from ▁t + he, while llama.cpp would also join ▁th + e: 20 such pairs, which the export warns about
        Path tiny = ExportFixtures.tinyTokenizer();
        GgufVocabulary v = GgufVocabulary.read(Files.readAllBytes(tiny),
                Files.readAllBytes(tiny.resolveSibling("tokenizer_config.json")), tiny.toString(), 512);
        assertEquals(512, v.size());
        assertEquals(20, v.mergeGaps());
    }
}
