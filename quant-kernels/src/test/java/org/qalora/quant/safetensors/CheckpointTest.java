package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;

class CheckpointTest {
    @Test
    void opensTheSingleFileFixtureWithItsConfig() throws IOException {
        try (Checkpoint c = Checkpoint.open(Fixtures.tinyLlama().toString())) {
            assertEquals(21, c.names().size());
            assertTrue(c.contains("lm_head.weight"));
            assertEquals(128, c.config().hiddenSize());
            assertEquals("pt", c.metadata().get("format"));
        }
    }

    /** Re-shards the fixture model, then reads every tensor back through the index, mapped and through Hadoop streams. */
    @Test
    void shardedCheckpointReadsLikeTheSingleFile(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("sharded");
        try (Checkpoint single = Checkpoint.open(Fixtures.tinyLlama().toString())) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (String name : single.names()) {
                w.copy(single, name);
            }
            List<String> files = w.writeCheckpoint(out.toString(), 300_000, HadoopPaths.defaults());
            assertEquals(Checkpoint.INDEX_FILE, files.get(files.size() - 1));
            assertTrue(files.size() >= 4, files.toString());
            assertEquals("model-00001-of-0000" + (files.size() - 1) + ".safetensors", files.get(0));
            Files.copy(Fixtures.tinyLlama().resolve("config.json"), out.resolve("config.json"));

            HadoopPaths streaming = new HadoopPaths(new Configuration(), false);
            for (HadoopPaths paths : List.of(HadoopPaths.defaults(), streaming)) {
                try (Checkpoint sharded = Checkpoint.open(out.toUri().toString(), paths)) {
                    assertEquals(single.names().stream().sorted().toList(), sharded.names().stream().sorted().toList());
                    for (String name : single.names()) {
                        assertEquals(single.info(name), sharded.info(name));
                        assertArrayEquals(single.floats(name), sharded.floats(name), name);
                    }
                    assertEquals(2, sharded.config().numHiddenLayers());
                }
            }
            String index = Files.readString(out.resolve(Checkpoint.INDEX_FILE));
            assertTrue(index.contains("\"total_size\" : " + w.totalBytes()), index);
        }
    }

    @Test
    void missingShardIsReported(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE),
                "{\"metadata\": {}, \"weight_map\": {\"a\": \"model-00002-of-00002.safetensors\"}}");
        FormatException e = assertThrows(FormatException.class, () -> Checkpoint.open(dir.toString()));
        assertTrue(e.getMessage().contains("model-00002-of-00002.safetensors"), e.getMessage());

        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), "{\"metadata\": {}}");
        e = assertThrows(FormatException.class, () -> Checkpoint.open(dir.toString()));
        assertTrue(e.getMessage().contains("weight_map"), e.getMessage());
    }

    @Test
    void emptyDirectoryIsReported(@TempDir Path dir) {
        FormatException e = assertThrows(FormatException.class, () -> Checkpoint.open(dir.toString()));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
        assertFalse(e.getMessage().isBlank());
    }
}
