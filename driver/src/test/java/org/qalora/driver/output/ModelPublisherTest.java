package org.qalora.driver.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.HoldPoint;
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

    /**
     * A driver killed between the rename and the LATEST flip left a complete version that LATEST does not name; the
     * restarted driver publishes the same name with the same info: the version is taken as it is (the writer does
     * not run) and LATEST flipped. Anything else under that name is never overwritten.
     */
    @Test
    void aPublishInterruptedBeforeTheLatestFlipIsCompletedNotRepeated() throws IOException {
        Storage s = new Storage(new Configuration());
        List<String> log = new ArrayList<>();
        ModelPublisher pub = new ModelPublisher(s, HoldPoint.none(), log::add);
        var root = s.path(dir.toString());
        Map<String, String> info = Map.of("round", "6");
        pub.publish(root, "v-0", Map.of("round", "0"), d -> write(new org.apache.hadoop.fs.Path(d, "config.json"), "{0}", s));
        var v6 = pub.publish(root, "v-6", info, d -> write(new org.apache.hadoop.fs.Path(d, "config.json"), "{6}", s));
        Files.writeString(dir.resolve("LATEST"), "v-0\n"); // as the kill left it: LATEST still names the previous one

        assertEquals(v6, pub.publish(root, "v-6", info, d -> { throw new AssertionError("must not rewrite v-6"); }));
        assertEquals("v-6", Files.readString(dir.resolve("LATEST")).trim());
        assertTrue(log.stream().anyMatch(l -> l.contains("completing that publish")), log.toString());

        IllegalStateException other = assertThrows(IllegalStateException.class,
                () -> pub.publish(root, "v-6", Map.of("round", "7"), d -> {}));
        assertTrue(other.getMessage().contains("is not this publish"), other.getMessage());
        Files.writeString(dir.resolve("v-6/config.json"), "{7}");
        IllegalStateException changed = assertThrows(IllegalStateException.class,
                () -> pub.publish(root, "v-6", info, d -> {}));
        assertTrue(changed.getMessage().contains("config.json does not match"), changed.getMessage());
        assertEquals("{7}", Files.readString(dir.resolve("v-6/config.json")), "never overwritten");
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

    /**
     * {@code --keep-versions}: the N newest versions stay, and the one LATEST names whatever its age; a version left
     * without its manifest (a delete cut short) counts as oldest; other names are never touched; 0 keeps all.
     */
    @Test
    void retainKeepsTheNewestVersionsAndTheOneLatestNames() throws Exception {
        Storage s = new Storage(new Configuration());
        List<String> log = new ArrayList<>();
        ModelPublisher pub = new ModelPublisher(s, HoldPoint.none(), log::add);
        var root = s.path(dir.toString());
        List<String> names = List.of("v-r00002-aaaaaaaa", "v-r00002-bbbbbbbb", "v-r00001-cccccccc", "v-r00003-dddddddd");
        for (String name : names) {
            pub.publish(root, name, Map.of(), d -> write(new org.apache.hadoop.fs.Path(d, "config.json"), name, s));
            Thread.sleep(20);   // manifests written at distinct times: that is the order retain keeps
        }
        Files.createDirectories(dir.resolve("v-r00009-eeeeeeee"));   // no manifest: a half-deleted version
        Files.createDirectories(dir.resolve("notes"));
        assertTrue(pub.retain(root, 0).isEmpty(), "0 keeps every version");
        // LATEST names an older version (e.g. set back by hand): it stays besides the newest.
        Files.writeString(dir.resolve(ModelPublisher.LATEST), "v-r00002-bbbbbbbb\n");
        List<String> deleted = pub.retain(root, 1).stream().map(org.apache.hadoop.fs.Path::getName).sorted().toList();
        assertEquals(List.of("v-r00001-cccccccc", "v-r00002-aaaaaaaa", "v-r00009-eeeeeeee"), deleted);
        try (var left = Files.list(dir)) {
            assertEquals(List.of(ModelPublisher.LATEST, "notes", "v-r00002-bbbbbbbb", "v-r00003-dddddddd"),
                    left.map(p -> p.getFileName().toString()).sorted().toList());
        }
        assertTrue(log.stream().anyMatch(l -> l.startsWith("--keep-versions 1: deleted ")), String.join("\n", log));
    }
}
