package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.testing.Fixtures;

class SafetensorsWriterTest {
    /**
     * Copying every tensor of files written by the reference library (HF save_pretrained) gives the same bytes:
     * same tensor order, compact header, __metadata__ first, space padding to 8 bytes. Insertion order is shuffled
     * to show it does not matter.
     */
    @Test
    void reproducesReferenceFilesByteForByte(@TempDir Path dir) throws IOException {
        for (Path original : List.of(Fixtures.tinyLlama().resolve("model.safetensors"),
                Fixtures.tinyLlamaGptq().resolve("model.safetensors"), Fixtures.reference())) {
            try (SafetensorsFile f = SafetensorsFile.open(original.toString())) {
                List<String> names = new ArrayList<>(f.names());
                Collections.shuffle(names, new java.util.Random(7));
                SafetensorsWriter w = new SafetensorsWriter();
                for (String name : names) {
                    w.addBytes(name, f.info(name).dtype(), f.bytes(name), f.info(name).shape());
                }
                Path copy = dir.resolve(original.getFileName() + "-copy");
                w.write(copy.toString());
                assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(copy), original.toString());
            }
        }
    }

    @Test
    void narrowsFloatsWithRoundToNearestEven(@TempDir Path dir) throws IOException {
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0); 1 + 3*2^-8 rounds up.
        float[] values = {1f + 0x1p-8f, 1f + 3 * 0x1p-8f, -2.5f, 65504f, Float.NaN};
        Path p = dir.resolve("f.safetensors");
        new SafetensorsWriter().addFloats("b", DType.BF16, values, 5).addFloats("h", DType.F16, values, 5)
                .addFloats("f", DType.F32, values, 5).write(p.toString());
        try (SafetensorsFile f = SafetensorsFile.open(p.toString())) {
            float[] b = f.floats("b");
            assertEquals(1f, b[0]);
            assertEquals(1f + 4 * 0x1p-8f, b[1]);
            assertEquals(-2.5f, b[2]);
            assertEquals(Float.NaN, b[4]);
            assertEquals(65504f, f.floats("h")[3]);
            assertArrayEquals(values, f.floats("f"));
        }
    }

    @Test
    void rejectsInconsistentTensors() {
        SafetensorsWriter w = new SafetensorsWriter();
        assertThrows(IllegalArgumentException.class, () -> w.addInts("x", new int[3], 2, 2));
        w.addInts("x", new int[4], 2, 2);
        assertThrows(IllegalArgumentException.class, () -> w.addInts("x", new int[4], 4));
        assertThrows(IllegalArgumentException.class, () -> w.addFloats("y", DType.I32, new float[1], 1));
    }
}
