package org.qalora.driver.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.Iterator;
import java.util.Map;

/**
 * The number of ids an HF {@code tokenizer.json} can produce (1 + the largest id in {@code model.vocab} and
 * {@code added_tokens}), and the check that they all fit the model's embedding table: an id at or above the
 * model's {@code vocab_size} would index past the embedding matrix, so such a pair is refused before any work.
 */
public final class TokenizerVocabulary {
    private TokenizerVocabulary() {}

    public static int size(byte[] tokenizerJson, String name) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(tokenizerJson);
        } catch (IOException e) {
            throw new IllegalArgumentException(name + " is not a JSON tokenizer file: " + e.getMessage(), e);
        }
        JsonNode vocab = root.path("model").path("vocab");
        if (!vocab.isObject() && !vocab.isArray()) {
            throw new IllegalArgumentException(name + " has no model.vocab: is it an HF tokenizers tokenizer.json?");
        }
        int max = -1;
        if (vocab.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
                max = Math.max(max, it.next().getValue().asInt());
            }
        } else {
            max = vocab.size() - 1; // Unigram: a list of [piece, score], the id is the position
        }
        for (JsonNode t : root.path("added_tokens")) {
            max = Math.max(max, t.path("id").asInt());
        }
        return max + 1;
    }

    /** Refuses a tokenizer whose ids do not all fit the model's embedding table. */
    public static void checkFits(byte[] tokenizerJson, String tokenizerName, int modelVocab, String modelName) {
        int size = size(tokenizerJson, tokenizerName);
        if (size > modelVocab) {
            throw new IllegalArgumentException("tokenizer " + tokenizerName + " produces ids up to " + (size - 1)
                    + " but model " + modelName + " has vocab_size " + modelVocab
                    + ": its embedding table cannot take them. Use the model's own tokenizer.json (--tokenizer).");
        }
    }
}
