package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;

/**
 * Bad-input fuzzing of the safetensors reader: a fixed seed and a bounded count of mutations of the tiny-llama
 * checkpoint's header (random bytes, random length fields, truncation, and JSON-level edits: huge and overlapping
 * data_offsets, huge shapes, wrong types). Every mutation either still opens (it happened to stay valid) or fails
 * with one {@link FormatException} whose message names the file; never another exception type, never a hang, and the
 * directory holds nothing but the input afterwards.
 */
class SafetensorsFuzzTest {
    private static final long SEED = 0x5AFE_7E50L;
    private static final int MUTATIONS = 300;
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static final HadoopPaths[] READERS = {HadoopPaths.defaults(), new HadoopPaths(new Configuration(), false)};

    @Test
    void mutatedHeadersFailCleanly() throws IOException {
        byte[] original = Files.readAllBytes(Fixtures.tinyLlama().resolve("model.safetensors"));
        long n = ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        byte[] header = Arrays.copyOfRange(original, 8, 8 + (int) n);
        byte[] data = Arrays.copyOfRange(original, 8 + (int) n, original.length);
        ObjectNode headerJson = (ObjectNode) JSON.readTree(header);
        SplittableRandom random = new SplittableRandom(SEED);
        int[] rejected = {0};
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                byte[] mutated = switch (i % 4) {
                    case 0 -> flipBytes(original, 8 + (int) n, random);
                    case 1 -> withLength(original, randomLength(random, n, original.length));
                    case 2 -> Arrays.copyOf(original, random.nextInt(original.length));
                    default -> file(mutateJson(headerJson, random), data);
                };
                if (check(mutated, "mutation " + i)) {
                    rejected[0]++;
                }
            }
        });
        assertTrue(rejected[0] > MUTATIONS * 9 / 10, "most mutations must be rejected, got " + rejected[0]);
    }

    /**
     * Regression: data_offsets near Long.MAX_VALUE overflowed {@code dataStart + offset} to a negative position and
     * were reported as "overlap the previous tensor (which ends at 0)"; now the entry itself is checked against the
     * data area and the message names the tensor and the offsets.
     */
    @Test
    void offsetsNearLongMaxAreReportedAsPastTheEnd() throws IOException {
        String h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]}}";
        Path p = write(file(h.getBytes(StandardCharsets.UTF_8), new byte[0]));
        for (HadoopPaths paths : READERS) {
            FormatException e = assertThrows(FormatException.class, () -> SafetensorsFile.open(p.toString(), paths).close());
            assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("tensor a")
                    && e.getMessage().contains("past the end"), e.getMessage());
        }
    }

    /** Overlapping offsets (two tensors sharing bytes) name both the file and the tensor. */
    @Test
    void overlappingOffsetsNameTheTensor() throws IOException {
        String h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}";
        Path p = write(file(h.getBytes(StandardCharsets.UTF_8), new byte[6]));
        for (HadoopPaths paths : READERS) {
            FormatException e = assertThrows(FormatException.class, () -> SafetensorsFile.open(p.toString(), paths).close());
            assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("tensor b")
                    && e.getMessage().contains("overlap"), e.getMessage());
        }
    }

    /** Returns true when the file was rejected (with a FormatException naming it), false when it opened. */
    private boolean check(byte[] bytes, String what) throws IOException {
        Path p = write(bytes);
        boolean rejected = false;
        for (HadoopPaths paths : READERS) {
            try (SafetensorsFile f = SafetensorsFile.open(p.toString(), paths)) {
                for (String name : f.names()) {
                    f.bytes(name);
                }
            } catch (FormatException e) {
                assertTrue(e.getMessage().contains(p.toString()), what + ": message does not name the file: " + e.getMessage());
                rejected = true;
            } catch (Throwable t) {
                fail(what + ": expected a FormatException, got " + t, t);
            }
        }
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(p), left.toList(), what + ": the reader wrote something");
        }
        Files.delete(p);
        return rejected;
    }

    private Path write(byte[] bytes) throws IOException {
        Path p = dir.resolve("model.safetensors");
        Files.write(p, bytes);
        return p;
    }

    private static byte[] file(byte[] header, byte[] data) {
        return ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(header.length).put(header).put(data).array();
    }

    private static byte[] flipBytes(byte[] original, int headerEnd, SplittableRandom random) {
        byte[] b = original.clone();
        int count = 1 + random.nextInt(8);
        for (int k = 0; k < count; k++) {
            b[random.nextInt(headerEnd)] = (byte) random.nextInt(256);
        }
        return b;
    }

    private static long randomLength(SplittableRandom random, long n, long fileSize) {
        return switch (random.nextInt(6)) {
            case 0 -> random.nextLong();                                  // anything, negative included
            case 1 -> Long.MAX_VALUE - random.nextInt(16);
            case 2 -> SafetensorsHeader.MAX_HEADER_BYTES + random.nextInt(1, 1000);
            case 3 -> fileSize - 8 + random.nextInt(1, 100);             // just past the end
            case 4 -> n + random.nextInt(-8, 9);                           // almost right
            default -> random.nextInt(0, 3);
        };
    }

    private static byte[] withLength(byte[] original, long length) {
        byte[] b = original.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, length);
        return b;
    }

    private static final long[] HUGE = {Long.MAX_VALUE, Long.MAX_VALUE - 1, 1L << 62, 1L << 32, Integer.MAX_VALUE, -1, -Long.MAX_VALUE};

    /** One JSON-level edit of a random tensor entry. */
    private static byte[] mutateJson(ObjectNode headerJson, SplittableRandom random) {
        ObjectNode root = headerJson.deepCopy();
        List<String> names = new ArrayList<>();
        root.fieldNames().forEachRemaining(name -> { if (!name.equals("__metadata__")) names.add(name); });
        String name = names.get(random.nextInt(names.size()));
        ObjectNode entry = (ObjectNode) root.get(name);
        ArrayNode offsets = (ArrayNode) entry.get("data_offsets");
        switch (random.nextInt(12)) {
            case 0 -> offsets.set(random.nextInt(2), HUGE[random.nextInt(HUGE.length)]);
            case 1 -> { // overlap with another tensor
                ArrayNode other = (ArrayNode) root.get(names.get(random.nextInt(names.size()))).get("data_offsets");
                long begin = other.get(0).asLong() + random.nextInt(0, 4);
                offsets.set(0, begin);
                offsets.set(1, begin + offsets.get(1).asLong() - offsets.get(0).asLong());
            }
            case 2 -> { // both ends huge, span consistent with a one-byte tensor
                long end = HUGE[random.nextInt(3)];
                entry.put("dtype", "U8");
                entry.putArray("shape").add(1);
                offsets.set(0, end - 1);
                offsets.set(1, end);
            }
            case 3 -> entry.putArray("shape").add(HUGE[random.nextInt(HUGE.length)]).add(HUGE[random.nextInt(HUGE.length)]);
            case 4 -> entry.put("dtype", List.of("F64", "Q4", "", "f32").get(random.nextInt(4)));
            case 5 -> entry.remove(List.of("dtype", "shape", "data_offsets").get(random.nextInt(3)));
            case 6 -> entry.put(List.of("dtype", "shape", "data_offsets").get(random.nextInt(3)), random.nextInt());
            case 7 -> entry.put("data_offsets", "0,4");
            case 8 -> offsets.add(0);
            case 9 -> offsets.set(random.nextInt(2), 1.5);
            case 10 -> root.put(name, random.nextBoolean() ? "x" : null);
            default -> root.put("__metadata__", random.nextInt());
        }
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }
}
