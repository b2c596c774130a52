package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.testing.Fixtures;

/**
 * Shard names in model.safetensors.index.json come from the file: they must name a file in the checkpoint directory
 * and nothing else. A sibling checkpoint exists beside the directory, so an escaping name would otherwise open.
 */
class CheckpointIndexEscapeTest {
    @TempDir
    Path root;

    @ParameterizedTest
    @ValueSource(strings = {"..", ".", "../outside/model.safetensors", "/etc/passwd", "sub/model.safetensors",
            "..\\\\outside\\\\model.safetensors", "file:/etc/passwd", "s3a:model.safetensors", "", "a\\u0000b"})
    void escapingShardNamesAreRefused(String shard) throws IOException {
        Path outside = Files.createDirectories(root.resolve("outside"));
        Files.copy(Fixtures.tinyLlama().resolve("model.safetensors"), outside.resolve("model.safetensors"));
        Path dir = Files.createDirectories(root.resolve("ckpt"));
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE),
                "{\"metadata\":{},\"weight_map\":{\"model.embed_tokens.weight\":\"" + shard + "\"}}");
        FormatException e = assertThrows(FormatException.class, () -> Checkpoint.open(dir.toString()).close());
        assertTrue(e.getMessage().contains(dir.resolve(Checkpoint.INDEX_FILE).toString())
                && e.getMessage().contains("model.embed_tokens.weight")
                && e.getMessage().contains("same directory"), e.getMessage());
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(1, left.count(), "nothing is written beside the index");
        }
    }
}
