package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;

/** Corrupt and truncated files: each gives a FormatException naming the file (and tensor) and the problem. */
class SafetensorsValidationTest {
    @TempDir
    Path dir;

    private Path file(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return raw(h.length, h, new byte[dataBytes]);
    }

    private Path raw(long declaredLength, byte[] header, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredLength).put(header).put(data);
        Path p = dir.resolve("t" + System.nanoTime() + ".safetensors");
        Files.write(p, b.array());
        return p;
    }

    /** Opens through both the mapped and the Hadoop-stream path; both must fail with a message containing each part. */
    private void assertRejected(Path p, String... messageParts) {
        for (HadoopPaths paths : new HadoopPaths[] {HadoopPaths.defaults(), new HadoopPaths(new Configuration(), false)}) {
            FormatException e = assertThrows(FormatException.class, () -> SafetensorsFile.open(p.toString(), paths).close());
            assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
            for (String part : messageParts) {
                assertTrue(e.getMessage().contains(part), "expected \"" + part + "\" in: " + e.getMessage());
            }
        }
    }

    private static final String GOOD = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
            + "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]}}";

    @Test
    void aValidFileOpens() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file(GOOD, 24).toString())) {
            assertTrue(f.contains("a") && f.contains("b"));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 5, 8, 20, 60})
    void truncatedFilesAreReported(int keep) throws IOException {
        Path good = file(GOOD, 24);
        byte[] all = Files.readAllBytes(good);
        Path cut = dir.resolve("cut" + keep + ".safetensors");
        Files.write(cut, Arrays.copyOf(all, Math.min(keep, all.length)));
        assertRejected(cut, keep < 8 ? "too short" : "truncated");
    }

    @Test
    void truncatedDataAreaIsReported() throws IOException {
        assertRejected(file(GOOD, 20), "truncated");
    }

    @Test
    void absurdHeaderLengthIsReported() throws IOException {
        assertRejected(raw(Long.MAX_VALUE, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]), "header length");
    }

    @Test
    void badJsonIsReported() throws IOException {
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],", 16), "not valid JSON");
        assertRejected(file("[1, 2, 3]", 0), "'{'");
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "not valid JSON");
    }

    @Test
    void invalidUtf8IsReported() throws IOException {
        byte[] h = "{\"a\u00ff\":{}}".getBytes(StandardCharsets.ISO_8859_1);
        assertRejected(raw(h.length, h, new byte[0]), "UTF-8");
    }

    @Test
    void missingFieldsAreReported() throws IOException {
        assertRejected(file("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "tensor a", "dtype");
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "tensor a", "shape");
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "tensor a", "data_offsets");
    }

    @Test
    void shapeAndOffsetMismatchIsReported() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F16\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", 16),
                "tensor w", "needs 12 bytes", "span 16");
    }

    @Test
    void overlapsAndGapsAreReported() throws IOException {
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlap");
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), "gap");
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12), "not described");
    }

    @Test
    void unsupportedDtypeIsNamed() throws IOException {
        assertRejected(file("{\"x\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8),
                "tensor x", "unsupported dtype \"F64\"");
    }
}
