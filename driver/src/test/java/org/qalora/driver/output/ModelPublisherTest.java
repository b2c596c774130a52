package org.qalora.driver.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;

class ModelPublisherTest {
    @TempDir
    Path dir;

    private static void write(org.apache.hadoop.fs.Path p, String text, Storage s) throws IOException {
        try (var out = s.fs(p).create(p, false)) {
            out.write(text.getBytes(StandardCharsets.UTF_8));
        }
    }

    @Test
    void publishesVersionsAndFlipsLatest() throws IOException {
        Storage s = new Storage(new Configuration());
        ModelPublisher pub = new ModelPublisher(s);
        var root = s.path(dir.toString());
        assertTrue(pub.latest(root).isEmpty());
        var v1 = pub.publish(root, "v-1", Map.of("round", "1"), d -> {
            write(new org.apache.hadoop.fs.Path(d, "config.json"), "{}", s);
            write(new org.apache.hadoop.fs.Path(d, "adapter/adapter_config.json"), "{\"r\":8}", s);
        });
        assertEquals(v1, pub.latest(root).orElseThrow());
        assertEquals(2, pub.manifest(v1).files().size());
        assertTrue(pub.manifest(v1).files().containsKey("adapter/adapter_config.json"));
        assertTrue(pub.verify(v1).isEmpty());
        var v2 = pub.publish(root, "v-2", Map.of(), d -> write(new org.apache.hadoop.fs.Path(d, "config.json"), "{2}", s));
        assertEquals(v2, pub.latest(root).orElseThrow());
        assertEquals("v-2", Files.readString(dir.resolve("LATEST")).trim());
        // Never overwritten, never nested.
        assertThrows(IllegalStateException.class, () -> pub.publish(root, "v-1", Map.of(), d -> {}));
        assertFalse(Files.exists(dir.resolve("v-1/v-1")));
        // Tampering is detected.
        Files.writeString(dir.resolve("v-2/config.json"), "{3}");
        assertTrue(pub.verify(v2).orElseThrow().contains("config.json does not match"));
    }

    @Test
    void aFailingWriterPublishesNothingAndLeavesNoTemporary() throws IOException {
        Storage s = new Storage(new Configuration());
        ModelPublisher pub = new ModelPublisher(s);
        var root = s.path(dir.toString());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> pub.publish(root, "v-1", Map.of(),
                d -> { throw new IOException("disk full"); }));
        assertTrue(e.getMessage().contains("disk full") && e.getMessage().contains("nothing was published"));
        try (var files = Files.list(dir)) {
            assertEquals(0, files.count());
        }
    }
}
