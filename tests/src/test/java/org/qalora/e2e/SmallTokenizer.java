package org.qalora.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Shrinks the bundled 32000-piece SentencePiece BPE tokenizer (HF tokenizers format) to a vocabulary that fits
 * the fixture model's 512 ids, by a fixed rule: {@code <unk>, <s>, </s>}, the 256 {@code <0xNN>} byte-fallback
 * tokens, {@code ▁} and the printable ASCII characters, then the original merges in rank order whose parts are
 * already in the vocabulary, until {@code size} pieces. Every other setting (normalizer, decoder, post-processor)
 * is kept, so it tokenizes like the original with coarser pieces (anything else falls back to bytes).
 */
final class SmallTokenizer {
    private SmallTokenizer() {}

    static void write(Path bigTokenizerJson, int size, Path out) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = (ObjectNode) json.readTree(bigTokenizerJson.toFile());
        ObjectNode model = (ObjectNode) root.get("model");
        JsonNode bigVocab = model.get("vocab");
        Map<String, Integer> vocab = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = bigVocab.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getValue().asInt() < 3 + 256) { // <unk>, <s>, </s> and the byte tokens keep their ids
                vocab.put(e.getKey(), e.getValue().asInt());
            }
        }
        add(vocab, "\u2581", bigVocab);
        for (char c = 33; c < 127; c++) {
            add(vocab, String.valueOf(c), bigVocab);
        }
        ArrayNode merges = json.createArrayNode();
        for (JsonNode m : model.get("merges")) {
            if (vocab.size() >= size) {
                break;
            }
            String text = m.isArray() ? m.get(0).asText() + " " + m.get(1).asText() : m.asText();
            int sp = text.indexOf(' ');
            String a = text.substring(0, sp);
            String b = text.substring(sp + 1);
            if (vocab.containsKey(a) && vocab.containsKey(b) && bigVocab.has(a + b) && !vocab.containsKey(a + b)) {
                vocab.put(a + b, vocab.size());
                merges.add(text);
            }
        }
        ObjectNode v = json.createObjectNode();
        vocab.forEach(v::put);
        model.set("vocab", v);
        model.set("merges", merges);
        Files.createDirectories(out.getParent());
        json.writeValue(out.toFile(), root);
    }

    private static void add(Map<String, Integer> vocab, String piece, JsonNode bigVocab) {
        if (bigVocab.has(piece) && !vocab.containsKey(piece)) {
            vocab.put(piece, vocab.size());
        }
    }
}
