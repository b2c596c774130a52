package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;

class SafetensorsFileTest {
    private static final String MODEL = Fixtures.tinyLlama().resolve("model.safetensors").toString();

    @Test
    void readsTheBf16FixtureModel() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(MODEL)) {
            assertEquals(2 + 2 * 9 + 1, f.names().size());
            assertEquals("pt", f.metadata().get("format"));
            TensorInfo q = f.info("model.layers.0.self_attn.q_proj.weight");
            assertEquals(DType.BF16, q.dtype());
            assertTrue(q.hasShape(128, 128));
            float[] w = f.floats("model.layers.0.self_attn.q_proj.weight"); // [128, 128]
            // Values printed by numpy from the same file (bf16 widened to float32).
            assertArrayEquals(new float[] {-0.1923828125f, -0.0238037109375f, 0.07080078125f, -0.04638671875f},
                    java.util.Arrays.copyOf(w, 4));
            assertEquals(-6.7518261186778545, sum(w), 1e-9);
            assertEquals(-89.46338593959808, sum(f.floats("model.embed_tokens.weight")), 1e-8);
        }
    }

    @Test
    void readsI64AndF32FromTheReferenceFile() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(Fixtures.reference().toString())) {
            long[] ids = f.longs("input_ids"); // [2, 24]
            assertEquals(48, ids.length);
            assertArrayEquals(new long[] {22, 506, 217, 201, 137, 437}, java.util.Arrays.copyOf(ids, 6));
            assertEquals(6.694687843322754f, f.floats("base.loss")[0]);
            assertThrows(FormatException.class, () -> f.floats("input_ids"));
            assertThrows(IllegalArgumentException.class, () -> f.info("no.such.tensor"));
        }
    }

    /** The same bytes come back whether the file is mapped or read through Hadoop streams (as for hdfs://). */
    @Test
    void hadoopStreamPathReadsTheSameAsTheMappedPath() throws IOException {
        HadoopPaths streaming = new HadoopPaths(new Configuration(), false);
        String uri = Fixtures.tinyLlamaGptq().resolve("model.safetensors").toUri().toString();
        assertTrue(uri.startsWith("file:/"));
        try (SafetensorsFile mapped = SafetensorsFile.open(uri);
             SafetensorsFile streamed = SafetensorsFile.open(uri, streaming)) {
            assertEquals(mapped.names(), streamed.names());
            for (String name : mapped.names()) {
                assertEquals(mapped.info(name), streamed.info(name));
                assertArrayEquals(mapped.bytes(name), streamed.bytes(name), name);
            }
            String scales = "model.layers.0.self_attn.q_proj.scales";
            assertArrayEquals(mapped.floats(scales), streamed.floats(scales));
            assertEquals(mapped.segment(scales).byteSize(), streamed.segment(scales).byteSize());
        }
    }

    /**
     * A file over 2 GiB (sparse, so it costs no disk): a tensor that lives past offset 2^31 must be read correctly,
     * which breaks any int-indexed implementation.
     */
    @Test
    void readsTensorsPastTwoGibibytes(@TempDir Path dir) throws IOException {
        long big = (1L << 31) + 24; // U8 filler
        String header = "{\"filler\":{\"dtype\":\"U8\",\"shape\":[" + big + "],\"data_offsets\":[0," + big + "]},"
                + "\"tail\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[" + big + "," + (big + 12) + "]}}";
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        Path file = dir.resolve("big.safetensors");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
            raf.write(h);
            long dataStart = 8 + h.length;
            raf.setLength(dataStart + big + 12);
            raf.seek(dataStart + big);
            raf.write(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-2f).putFloat(3.25f).array());
        }
        try (SafetensorsFile f = SafetensorsFile.open(file.toString())) {
            assertEquals(big, f.info("filler").numel());
            assertArrayEquals(new float[] {1.5f, -2f, 3.25f}, f.floats("tail"));
            assertEquals(big, f.segment("filler").byteSize());
        }
    }

    static double sum(float[] values) {
        double s = 0;
        for (float v : values) {
            s += v;
        }
        return s;
    }
}
