package org.qalora.driver.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.testing.ToyTrainerFactory;
import org.qalora.quant.safetensors.SafetensorsFile;

class AdapterStateFileTest {
    @TempDir
    Path dir;

    private final Storage storage = new Storage(new Configuration());

    private org.apache.hadoop.fs.Path file(String name) {
        return storage.path(dir.resolve(name).toString());
    }

    @Test
    void roundTripsBitExactlyWithMetadataAndKeepsAnEarlierAttemptsFile() throws IOException {
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(3);
        org.apache.hadoop.fs.Path target = file("u.safetensors");
        String sha = AdapterStateFile.write(storage, target, "_tmp-a0", s, Map.of("target_tokens", "12"));
        assertEquals(storage.sha256(target), sha);
        AdapterStateFile.Contents back = AdapterStateFile.read(storage, target);
        assertTrue(back.state().bitwiseEquals(s));
        assertEquals(s.keys(), back.state().keys());
        assertEquals(Map.of("target_tokens", "12"), back.metadata());
        // A second attempt of the same task finds the file in place: it keeps it and leaves no temporary behind.
        String again = AdapterStateFile.write(storage, target, "_tmp-a1", s, Map.of("target_tokens", "12"));
        assertEquals(sha, again);
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count());
        }
        // Any safetensors reader sees the documented names.
        try (SafetensorsFile f = SafetensorsFile.open(target.toString())) {
            String k = s.keys().get(0);
            assertTrue(f.contains(k) && f.contains(k + ".adam_m") && f.contains(k + ".adam_v"), f.names().toString());
            assertEquals(AdapterStateFile.FORMAT, f.metadata().get("format"));
        }
    }

    /**
     * The state is streamed to its file from its arrays now, and the bytes are still those {@code SafetensorsWriter}
     * wrote for it (so an update's and a round's SHA-256 are what they were), for {@code write}, {@code writeUpdate}
     * and {@code sha256Of} alike.
     */
    @Test
    void theStreamedBytesAreThoseSafetensorsWriterWrote() throws IOException {
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(3);
        Map<String, String> extra = Map.of("round", "2", "target_tokens", "12");
        org.qalora.quant.safetensors.SafetensorsWriter w = new org.qalora.quant.safetensors.SafetensorsWriter();
        AdapterStateFile.metadata(s.keys(), s.step(), extra).forEach(w::metadata);
        for (String k : s.keys()) {
            AdapterTensors.Tensor t = s.tensor(k);
            w.addFloats(k, org.qalora.quant.safetensors.DType.F32, t.weights(), t.shape());
            w.addFloats(k + ".adam_m", org.qalora.quant.safetensors.DType.F32, t.adamM(), t.shape());
            w.addFloats(k + ".adam_v", org.qalora.quant.safetensors.DType.F32, t.adamV(), t.shape());
        }
        ByteArrayOutputStream expected = new ByteArrayOutputStream();
        w.writeTo(expected);
        org.apache.hadoop.fs.Path whole = file("whole.safetensors"), update = file("update.safetensors");
        AdapterStateFile.write(storage, whole, "_tmp-w", s, extra);
        AdapterStateFile.writeUpdate(storage, update, "_tmp-u", s, extra);
        assertTrue(Arrays.equals(expected.toByteArray(), Files.readAllBytes(dir.resolve("whole.safetensors"))));
        assertTrue(Arrays.equals(expected.toByteArray(), Files.readAllBytes(dir.resolve("update.safetensors"))));
        assertEquals(storage.sha256(whole), AdapterStateFile.sha256Of(s, extra));
    }

    /** The layout the driver wrote before it used SafetensorsWriter (tensors in key order): still readable. */
    @Test
    void readsACheckpointWrittenByTheEarlierHandRolledWriter() throws IOException {
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(5);
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("__metadata__", Map.of("round", "2", "format", AdapterStateFile.FORMAT,
                "step", Long.toString(s.step()), "keys", new ObjectMapper().writeValueAsString(s.keys())));
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        for (String k : s.keys()) {
            AdapterTensors.Tensor t = s.tensor(k);
            String[] names = {k, k + ".adam_m", k + ".adam_v"};
            float[][] parts = {t.weights(), t.adamM(), t.adamV()};
            for (int p = 0; p < 3; p++) {
                header.put(names[p], Map.of("dtype", "F32", "shape", t.shape(),
                        "data_offsets", new long[] {data.size(), data.size() + 4L * t.size()}));
                ByteBuffer b = ByteBuffer.allocate(4 * t.size()).order(ByteOrder.LITTLE_ENDIAN);
                b.asFloatBuffer().put(parts[p]);
                data.write(b.array());
            }
        }
        byte[] json = new ObjectMapper().writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
        out.write(json);
        out.write(" ".repeat(padded - json.length).getBytes());
        out.write(data.toByteArray());
        Files.write(dir.resolve("old.safetensors"), out.toByteArray());

        AdapterStateFile.Contents back = AdapterStateFile.read(storage, file("old.safetensors"));
        assertTrue(back.state().bitwiseEquals(s));
        assertEquals(s.keys(), back.state().keys());
        assertEquals(Map.of("round", "2"), back.metadata());
    }

    @Test
    void aTruncatedFileIsReportedAsTruncated() throws IOException {
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(3);
        AdapterStateFile.write(storage, file("whole.safetensors"), "_tmp-w", s, Map.of());
        byte[] bytes = Files.readAllBytes(dir.resolve("whole.safetensors"));
        Files.write(dir.resolve("cut.safetensors"), Arrays.copyOf(bytes, bytes.length - 10));
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> AdapterStateFile.read(storage, file("cut.safetensors")));
        assertTrue(e.getMessage().contains("cut.safetensors") && e.getMessage().contains("truncated"), e.getMessage());
        assertFalse(e.getMessage().contains("null"));
    }

    @Test
    void aForeignSafetensorsFileIsRefused() throws IOException {
        byte[] header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes();
        byte[] bytes = new byte[8 + header.length + 4];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).put(header);
        Files.write(dir.resolve("model.safetensors"), bytes);
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> AdapterStateFile.read(storage, file("model.safetensors")));
        assertTrue(e.getMessage().contains("model.safetensors: metadata format is missing, expected "
                + AdapterStateFile.FORMAT + " (not a qalora checkpoint state file)"), e.getMessage());
    }

    @Test
    void aMissingMomentIsNamed() throws IOException {
        byte[] header = ("{\"__metadata__\":{\"format\":\"" + AdapterStateFile.FORMAT
                + "\",\"step\":\"0\",\"keys\":\"[\\\"w\\\"]\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}")
                .getBytes();
        byte[] bytes = new byte[8 + header.length + 4];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).put(header);
        Files.write(dir.resolve("partial.safetensors"), bytes);
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> AdapterStateFile.read(storage, file("partial.safetensors")));
        assertTrue(e.getMessage().contains("tensor 'w.adam_m' (listed in metadata keys) is missing"), e.getMessage());
    }

    /**
     * The segment digests a slot task computes while writing are those of the file read back; they cover the
     * header and every tensor, so a flipped data byte changes exactly one tensor's digest and a flipped header byte
     * the header's; the SHA-256 {@link AdapterStateFile#sha256Of} predicts is the written file's.
     */
    @Test
    void segmentDigestsWhileWritingMatchTheFileAndLocateAChange() throws Exception {
        Storage storage = new Storage(new Configuration());
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(3);
        org.apache.hadoop.fs.Path file = storage.path(dir.resolve("digests.safetensors").toString());
        SegmentDigests written = AdapterStateFile.writeUpdate(storage, file, "_tmp-digests", s, Map.of("slot", "2"));
        SegmentDigests read = SegmentDigests.of(storage, file);
        assertEquals(3 * s.keys().size(), written.tensors().length, "weights, m and v of every key");
        assertEquals(Arrays.asList(written.tensors()), Arrays.asList(read.tensors()));
        assertEquals(Arrays.asList(written.crc32c()), Arrays.asList(read.crc32c()));
        assertEquals(written.header(), read.header());
        assertEquals(written.header(), SegmentDigests.headerOf(storage, file));
        assertEquals(written.root(), read.root());
        assertEquals(storage.sha256(file), AdapterStateFile.sha256Of(s, Map.of("slot", "2")));

        Path local = Path.of(file.toUri().getPath());
        byte[] bytes = Files.readAllBytes(local);
        long headerLength = 8 + java.nio.ByteBuffer.wrap(bytes, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(bytes, 0, (int) headerLength);
        assertEquals(String.format("%08x", crc.getValue()), written.header(), "the header's digest is its CRC32C");
        bytes[bytes.length - 5] ^= 0x10;
        Files.write(local, bytes);
        SegmentDigests changed = SegmentDigests.of(storage, file);
        int differing = 0;
        for (int i = 0; i < written.tensors().length; i++) {
            differing += written.crc32c()[i].equals(changed.crc32c()[i]) ? 0 : 1;
        }
        assertEquals(1, differing, "one tensor's bytes changed");
        assertEquals(written.header(), changed.header());
        bytes[bytes.length - 5] ^= 0x10;
        bytes[20] ^= 0x01; // inside the JSON header
        Files.write(local, bytes);
        assertFalse(written.header().equals(SegmentDigests.headerOf(storage, file)), "a header byte changed");
    }
}
