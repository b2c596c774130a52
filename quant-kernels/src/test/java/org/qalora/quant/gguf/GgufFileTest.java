package org.qalora.quant.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;

/** GGUF v3 written and read back: the exact byte layout of a small file, every value type, alignment, and refusals. */
class GgufFileTest {
    @TempDir
    Path dir;

    private static GgufWriter.Tensor f32(String name, float[] v, long... dims) {
        return new GgufWriter.Tensor(name, dims, GgmlType.F32, out -> DenseRows.write(v, 1, v.length, null, GgmlType.F32, out));
    }

    private Path write(GgufMetadata m, List<GgufWriter.Tensor> tensors) throws IOException {
        Path p = dir.resolve("t.gguf");
        try (OutputStream out = Files.newOutputStream(p)) {
            GgufWriter.write(out, m, tensors);
        }
        return p;
    }

    @Test
    void smallFileHasTheSpecifiedBytes() throws IOException {
        Path p = write(new GgufMetadata().putUint32("a", 7), List.of(f32("t", new float[] {1f, -2f}, 2)));
        byte[] b = Files.readAllBytes(p);
        String header = "47475546" + "03000000" + "0100000000000000" + "0100000000000000"  // magic, v3, 1 tensor, 1 kv
                + "0100000000000000" + "61" + "04000000" + "07000000"                        // "a": UINT32 7
                + "0100000000000000" + "74" + "01000000" + "0200000000000000"                // "t", 1 dim, ne0 = 2
                + "00000000" + "0000000000000000";                                           // F32, offset 0
        int headerBytes = header.length() / 2;                                                // 77
        assertEquals(header, HexFormat.of().formatHex(b, 0, headerBytes));
        for (int i = headerBytes; i < 96; i++) {
            assertEquals(0, b[i], "padding to 32 at byte " + i);
        }
        ByteBuffer data = ByteBuffer.wrap(b, 96, 8).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1f, data.getFloat());
        assertEquals(-2f, data.getFloat());
        assertEquals(128, b.length, "the last tensor is padded to the alignment too");
    }

    @Test
    void everyValueTypeAndTensorTypeReadsBack() throws IOException {
        GgufMetadata m = new GgufMetadata()
                .putString("general.name", "t\u00e9st \u2581 \uD83D\uDE00")
                .putUint32("u32", 0xFFFFFFFFL)
                .putFloat32("f", 1e-5f)
                .putBool("yes", true)
                .putBool("no", false)
                .putStrings("toks", List.of("<s>", "\u2581the", "", "<0x0A>"))
                .putFloat32s("scores", new float[] {0f, -1f, -58979f})
                .putInt32s("types", new int[] {3, 1, -2});
        m.put("i8", new GgufMetadata.Value(GgufMetadata.ValueType.INT8, null, -5L));
        m.put("u64", new GgufMetadata.Value(GgufMetadata.ValueType.UINT64, null, 1L << 40));
        m.put("f64", new GgufMetadata.Value(GgufMetadata.ValueType.FLOAT64, null, Math.PI));
        m.put("bools", new GgufMetadata.Value(GgufMetadata.ValueType.ARRAY, GgufMetadata.ValueType.BOOL,
                new boolean[] {true, false}));
        QuantizedMatrix q = Q41BlocksTest.merged(3, 64, 4, 32, 5);
        float[] dense = {0.5f, -0.25f, 3f, 1e-6f, 7f, -8f};
        List<GgufWriter.Tensor> tensors = List.of(
                f32("norm", new float[] {1, 2, 3}, 3),
                new GgufWriter.Tensor("half", new long[] {3, 2}, GgmlType.F16,
                        out -> DenseRows.write(dense, 2, 3, null, GgmlType.F16, out)),
                new GgufWriter.Tensor("q", new long[] {64, 3}, GgmlType.Q4_1, out -> Q41Blocks.encode(q, null, out)));
        Path p = write(m, tensors);

        GgufFile f = GgufFile.open(p.toString(), HadoopPaths.defaults());
        assertEquals(3, f.version());
        assertEquals(m.values(), f.metadata().values());
        assertEquals(List.copyOf(m.values().keySet()), List.copyOf(f.metadata().values().keySet()), "key order kept");
        assertEquals(0xFFFFFFFFL, f.metadata().integer("u32"));
        assertArrayEquals(new int[] {3, 1, -2}, f.metadata().int32s("types"));
        assertEquals(List.of("norm", "half", "q"), f.tensors().stream().map(GgufTensorInfo::name).toList());
        for (GgufTensorInfo t : f.tensors()) {
            assertEquals(0, t.offset() % 32, t.name());
        }
        assertEquals(0, f.dataStart() % 32);
        assertArrayEquals(new float[] {1, 2, 3}, f.floats("norm"));
        float[] halves = f.floats("half");
        for (int i = 0; i < dense.length; i++) {
            assertEquals(Half.value(Half.round(dense[i])), halves[i]);
        }
        assertArrayEquals(new long[] {64, 3}, f.tensor("q").dims());
        float[] w = f.floats("q");
        for (int o = 0; o < 3; o++) {
            for (int i = 0; i < 64; i++) {
                assertEquals(q.weight(o, i), w[o * 64 + i], 2e-4, "weight " + o + "," + i);
            }
        }
    }

    @Test
    void aTensorThatWritesTheWrongByteCountIsRefused() {
        GgufWriter.Tensor shortOne = new GgufWriter.Tensor("t", new long[] {4}, GgmlType.F32, out -> out.write(new byte[12]));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> GgufWriter.write(new ByteArrayOutputStream(), new GgufMetadata(), List.of(shortOne)));
        assertTrue(e.getMessage().contains("produced 12 bytes") && e.getMessage().contains("need 16"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new GgufMetadata().putBool("k", true).putBool("k", false));
    }

    @Test
    void corruptOrTruncatedFilesNameTheProblem() throws IOException {
        Path p = write(new GgufMetadata().putString("general.name", "x"),
                List.of(f32("a", new float[64], 64), f32("b", new float[64], 64)));
        byte[] good = Files.readAllBytes(p);

        Files.write(p, Arrays.copyOf(good, good.length - 100));
        FormatException e = assertThrows(FormatException.class, () -> GgufFile.open(p.toString(), HadoopPaths.defaults()));
        assertTrue(e.getMessage().contains("tensor b") && e.getMessage().contains("truncated"), e.getMessage());

        Files.write(p, Arrays.copyOf(good, 30));
        e = assertThrows(FormatException.class, () -> GgufFile.open(p.toString(), HadoopPaths.defaults()));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());

        byte[] magic = good.clone();
        magic[0] = 'X';
        Files.write(p, magic);
        e = assertThrows(FormatException.class, () -> GgufFile.open(p.toString(), HadoopPaths.defaults()));
        assertTrue(e.getMessage().contains("not a GGUF file"), e.getMessage());

        byte[] version = good.clone();
        version[4] = 2;
        Files.write(p, version);
        e = assertThrows(FormatException.class, () -> GgufFile.open(p.toString(), HadoopPaths.defaults()));
        assertTrue(e.getMessage().contains("version 2"), e.getMessage());

        byte[] hugeString = good.clone();
        hugeString[24 + 7] = 0x7F;                          // the first key's length: 2^62-ish bytes
        Files.write(p, hugeString);
        e = assertThrows(FormatException.class, () -> GgufFile.open(p.toString(), HadoopPaths.defaults()));
        assertTrue(e.getMessage().contains("metadata key 0") && e.getMessage().contains("more than the file"),
                e.getMessage());
    }
}
