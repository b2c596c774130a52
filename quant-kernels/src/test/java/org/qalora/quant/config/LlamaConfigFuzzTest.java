package org.qalora.quant.config;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.testing.Fixtures;

/**
 * Bad-input fuzzing of config.json: a fixed seed, a bounded count of mutations of the tiny-llama config (fields
 * removed, set to null, to a wrong JSON type, to out-of-range numbers; random characters changed). Each mutation
 * either parses or fails with one {@link FormatException} naming the file; a field the parser reads, given a wrong
 * JSON type, must be rejected with a message naming that field (it used to be read as 0, false or a default).
 */
class LlamaConfigFuzzTest {
    private static final long SEED = 0xC0F1_6L;
    private static final int MUTATIONS = 400;
    private static final String WHERE = "/models/tiny/config.json";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String NOISE = "{}[]\",:0-9.aenlrstu \n\\";
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    /** Fields LlamaConfig reads, with the JSON kind each must have. */
    private enum Kind { INT, TOKEN, TOKENS, NUMBER, BOOL, STRING, OBJECT }

    private static final Map<String, Kind> READ = Map.ofEntries(
            Map.entry("vocab_size", Kind.INT), Map.entry("hidden_size", Kind.INT),
            Map.entry("intermediate_size", Kind.INT), Map.entry("num_hidden_layers", Kind.INT),
            Map.entry("num_attention_heads", Kind.INT), Map.entry("num_key_value_heads", Kind.INT),
            Map.entry("head_dim", Kind.INT), Map.entry("max_position_embeddings", Kind.INT),
            Map.entry("bos_token_id", Kind.TOKEN), Map.entry("pad_token_id", Kind.TOKEN),
            Map.entry("eos_token_id", Kind.TOKENS), Map.entry("rms_norm_eps", Kind.NUMBER),
            Map.entry("attention_bias", Kind.BOOL), Map.entry("mlp_bias", Kind.BOOL),
            Map.entry("tie_word_embeddings", Kind.BOOL), Map.entry("model_type", Kind.STRING),
            Map.entry("hidden_act", Kind.STRING), Map.entry("rope_parameters", Kind.OBJECT));

    private static final List<JsonNode> VALUES = List.of(F.textNode("abc"), F.textNode("128"), F.booleanNode(true),
            F.numberNode(1.5), F.arrayNode(), F.objectNode(), F.arrayNode().add(1).add(2), F.numberNode(-1),
            F.numberNode(0), F.numberNode(Long.MAX_VALUE), F.numberNode(1e300), F.textNode(""));

    private static boolean wrongType(Kind kind, JsonNode v) {
        return switch (kind) {
            case INT, TOKEN -> !v.isIntegralNumber();
            case TOKENS -> !v.isIntegralNumber() && !(v.isArray() && allIntegral(v));
            case NUMBER -> !v.isNumber();
            case BOOL -> !v.isBoolean();
            case STRING -> !v.isTextual();
            case OBJECT -> !v.isObject();
        };
    }

    private static boolean allIntegral(JsonNode array) {
        for (JsonNode e : array) {
            if (!e.isIntegralNumber()) {
                return false;
            }
        }
        return true;
    }

    @Test
    void mutatedConfigsFailCleanly() throws IOException {
        String original = Files.readString(Fixtures.tinyLlama().resolve("config.json"));
        ObjectNode json = (ObjectNode) JSON.readTree(original);
        LlamaConfig.parse(original, WHERE, null);   // the fixture itself is valid
        List<String> fields = new ArrayList<>();
        json.fieldNames().forEachRemaining(fields::add);
        SplittableRandom random = new SplittableRandom(SEED);
        int[] rejected = {0};
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                ObjectNode m = json.deepCopy();
                String field = fields.get(random.nextInt(fields.size()));
                String text;
                boolean mustReject = false;
                switch (random.nextInt(4)) {
                    case 0 -> { m.remove(field); text = m.toString(); }
                    case 1 -> { m.putNull(field); text = m.toString(); }
                    case 2 -> {
                        JsonNode v = VALUES.get(random.nextInt(VALUES.size()));
                        m.set(field, v);
                        text = m.toString();
                        mustReject = READ.containsKey(field) && wrongType(READ.get(field), v);
                    }
                    default -> {
                        char[] c = original.toCharArray();
                        for (int k = random.nextInt(1, 4); k > 0; k--) {
                            c[random.nextInt(c.length)] = NOISE.charAt(random.nextInt(NOISE.length()));
                        }
                        text = new String(c);
                        field = null;
                    }
                }
                String what = "mutation " + i + " (" + field + "): " + text;
                try {
                    LlamaConfig.parse(text, WHERE, null);
                    if (mustReject) {
                        fail(what + ": a wrong JSON type was accepted");
                    }
                } catch (FormatException e) {
                    rejected[0]++;
                    assertTrue(e.getMessage().startsWith(WHERE), what + ": message does not name the file: " + e.getMessage());
                    if (mustReject) {
                        assertTrue(e.getMessage().contains(field), what + ": message does not name the field: " + e.getMessage());
                    }
                } catch (Throwable t) {
                    fail(what + ": expected a FormatException, got " + t, t);
                }
            }
        });
        assertTrue(rejected[0] > MUTATIONS / 4, "too few mutations rejected: " + rejected[0]);
    }

    /** Regressions found by the fuzzer: each of these was read as 0, false or a default instead of being refused. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "bos_token_id|\"1\"", "pad_token_id|true", "eos_token_id|\"2\"", "eos_token_id|[2, \"x\"]", "eos_token_id|-1",
        "max_position_embeddings|\"512\"", "tie_word_embeddings|\"yes\"", "attention_bias|1", "model_type|5",
        "rope_parameters|\"default\"", "rope_theta|\"big\""})
    void wrongTypesAreRefusedNamingTheField(String field, String value) throws IOException {
        ObjectNode m = (ObjectNode) JSON.readTree(Files.readString(Fixtures.tinyLlama().resolve("config.json")));
        if (field.equals("rope_theta")) {
            m.remove("rope_parameters");
        }
        m.set(field, JSON.readTree(value));
        FormatException e = assertThrows(FormatException.class, () -> LlamaConfig.parse(m.toString(), WHERE, null));
        assertTrue(e.getMessage().startsWith(WHERE) && e.getMessage().contains(field), e.getMessage());
    }

    @Test
    void theFixtureRoundTripsUnchanged() throws IOException {
        String original = Files.readString(Fixtures.tinyLlama().resolve("config.json"), StandardCharsets.UTF_8);
        LlamaConfig c = LlamaConfig.parse(original, WHERE, null);
        assertTrue(c.eosTokenIds().equals(List.of(2)) && c.bosTokenId() == 1 && c.padTokenId() == null, c.toString());
    }
}
