package org.qalora.datasets.tokenize;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bad-input fuzzing of tokenizer loading: a fixed seed and a small count (each accepted load parses the 1.8 MB
 * tokenizer.json natively) of field mutations of samples/tokenizer. Each load succeeds or fails with one
 * IllegalArgumentException (or UncheckedIOException) naming the file; a special token of the wrong JSON type is
 * refused naming the field (it used to fall back to "&lt;s&gt;" silently).
 */
class TokenizerFuzzTest {
    private static final long SEED = 0x70C_E2L;
    private static final int MUTATIONS = 24;
    private static final String NAME = "/models/tiny/tokenizer.json";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> VALUES = List.of("5", "[]", "{}", "{\"content\": 5}", "true", "\"<nope>\"", "null",
            "{\"content\": \"<s>\"}", "\"\"");

    private static byte[] tokenizer;
    private static ObjectNode config;

    @BeforeAll
    static void load() throws IOException {
        Path dir = root().resolve("samples/tokenizer");
        tokenizer = Files.readAllBytes(dir.resolve("tokenizer.json"));
        config = (ObjectNode) JSON.readTree(dir.resolve("tokenizer_config.json").toFile());
    }

    @Test
    void mutatedTokenizerConfigsFailCleanly() {
        SplittableRandom random = new SplittableRandom(SEED);
        assertTimeoutPreemptively(Duration.ofSeconds(15), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                ObjectNode m = config.deepCopy();
                String field = List.of("bos_token", "eos_token", "pad_token").get(random.nextInt(3));
                JsonNode v = JSON.readTree(VALUES.get(random.nextInt(VALUES.size())));
                m.set(field, v);
                boolean wrongType = !v.isNull() && !v.isTextual() && !(v.isObject() && v.path("content").isTextual());
                String what = "mutation " + i + ": " + field + " = " + v;
                try {
                    TextTokenizer.load(tokenizer, JSON.writeValueAsBytes(m), NAME).close();
                    if (wrongType) {
                        fail(what + ": a wrong JSON type was accepted");
                    }
                } catch (IllegalArgumentException | UncheckedIOException e) {
                    assertTrue(e.getMessage().startsWith(NAME), what + ": message does not name the file: " + e.getMessage());
                    if (wrongType) {
                        assertTrue(e.getMessage().contains(field), what + ": message does not name the field: " + e.getMessage());
                    }
                } catch (Throwable t) {
                    fail(what + ": expected IllegalArgumentException, got " + t, t);
                }
            }
        });
    }

    /** Structural damage to tokenizer.json: the Java checks or the native loader refuse it, naming the file. */
    @ParameterizedTest
    @ValueSource(strings = {"{}", "[]", "5", "{\"model\": 5}", "{\"model\": {\"type\": \"BPE\", \"vocab\": \"x\"}}",
            "{\"model\": {}, \"added_tokens\": [{\"content\": \"<s>\", \"id\": \"one\"}]}"})
    void brokenTokenizerJsonNamesTheFile(String json) {
        RuntimeException e = assertThrows(RuntimeException.class, () -> TextTokenizer.load(json.getBytes(), null, NAME).close());
        assertTrue(e instanceof IllegalArgumentException || e instanceof UncheckedIOException, e.toString());
        assertTrue(e.getMessage().startsWith(NAME), e.getMessage());
    }

    private static Path root() {
        String configured = System.getProperty("qalora.root");
        for (Path d = configured != null ? Path.of(configured) : Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            if (Files.isDirectory(d.resolve("samples/tokenizer"))) {
                return d;
            }
        }
        throw new IllegalStateException("samples/tokenizer not found above " + Path.of("").toAbsolutePath());
    }
}
