package org.qalora.worker.shard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.qalora.quant.safetensors.Checkpoint;

/** Comparing and re-sharding model directories in tests. */
public final class ModelFiles {
    private ModelFiles() {}

    /** Every tensor of {@code a} equals {@code b}'s: same names, dtype, shape and bytes. */
    public static void assertSameTensors(String a, String b) throws IOException {
        try (Checkpoint x = Checkpoint.open(a); Checkpoint y = Checkpoint.open(b)) {
            assertEquals(new TreeSet<>(x.names()), new TreeSet<>(y.names()));
            for (String name : x.names()) {
                assertEquals(x.info(name), y.info(name), name);
                assertArrayEquals(x.bytes(name), y.bytes(name), name);
            }
        }
    }

    /** Every file of {@code a} is byte-identical to {@code b}'s, and they hold the same files. */
    public static void assertSameFiles(Path a, Path b) throws IOException {
        List<String> files;
        try (Stream<Path> s = Files.list(a)) {
            files = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        try (Stream<Path> s = Files.list(b)) {
            assertEquals(files, s.map(p -> p.getFileName().toString()).sorted().toList());
        }
        for (String f : files) {
            assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(b.resolve(f)), f);
        }
    }
}
