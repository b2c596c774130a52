package org.qalora.driver.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.testing.ToyTrainerFactory;

class AdapterStateFileTest {
    @TempDir
    Path dir;

    @Test
    void roundTripsBitExactlyWithMetadataAndKeepsAnEarlierAttemptsFile() throws IOException {
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(3);
        Storage storage = new Storage(new Configuration());
        org.apache.hadoop.fs.Path target = storage.path(dir.resolve("u.safetensors").toString());
        String sha = AdapterStateFile.write(storage, target, "_tmp-a0", s, Map.of("target_tokens", "12"));
        assertEquals(storage.sha256(target), sha);
        AdapterStateFile.Contents back = AdapterStateFile.read(storage, target);
        assertTrue(back.state().bitwiseEquals(s));
        assertEquals("12", back.metadata().get("target_tokens"));
        // A second attempt of the same task finds the file in place: it keeps it and leaves no temporary behind.
        String again = AdapterStateFile.write(storage, target, "_tmp-a1", s, Map.of("target_tokens", "12"));
        assertEquals(sha, again);
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count());
        }
    }

    @Test
    void aTruncatedFileIsReportedByTensorName() {
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(3);
        byte[] bytes = AdapterStateFile.toBytes(s, Map.of());
        byte[] cut = Arrays.copyOf(bytes, bytes.length - 10);
        IOException e = assertThrows(IOException.class,
                () -> AdapterStateFile.readFrom(new ByteArrayInputStream(cut), "cut.safetensors"));
        assertTrue(e.getMessage().contains("cut.safetensors: truncated in tensor"), e.getMessage());
        assertFalse(e.getMessage().contains("null"));
    }

    @Test
    void aForeignSafetensorsFileIsRefused() {
        byte[] header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes();
        byte[] bytes = new byte[8 + header.length + 4];
        java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(header.length).put(header);
        IOException e = assertThrows(IOException.class,
                () -> AdapterStateFile.readFrom(new ByteArrayInputStream(bytes), "model.safetensors"));
        assertTrue(e.getMessage().contains("not a qalora checkpoint state file"), e.getMessage());
    }
}
