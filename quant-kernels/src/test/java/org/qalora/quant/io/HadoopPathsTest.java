package org.qalora.quant.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HadoopPathsTest {
    private final HadoopPaths paths = HadoopPaths.defaults();

    @Test
    void resolvesPlainPathsAndFileUrisToTheSameLocalFile(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("a.txt");
        Files.writeString(f, "hello");
        assertEquals(paths.resolve(f.toString()).path(), paths.resolve(f.toUri().toString()).path());
        assertEquals(f, paths.resolve(f.toString()).localFile());
        assertArrayEquals("hello".getBytes(StandardCharsets.UTF_8), paths.readAllBytes(f.toUri().toString()));
        assertTrue(paths.exists(f.toString()));
        assertFalse(paths.exists(dir.resolve("b").toString()));
        assertEquals("file", paths.resolve("relative/x").path().toUri().getScheme());
    }

    @Test
    void writeAtomicallyReplacesAndLeavesNoTemporaryOrChecksumFiles(@TempDir Path dir) throws IOException {
        String target = dir.resolve("sub/out.bin").toString();
        paths.writeAtomically(target, out -> out.write(new byte[] {1, 2, 3}));
        paths.writeAtomically(target, out -> out.write(new byte[] {4}));
        assertArrayEquals(new byte[] {4}, Files.readAllBytes(Path.of(target)));
        try (Stream<Path> s = Files.list(dir.resolve("sub"))) {
            assertEquals(1, s.count(), "only out.bin: no _tmp- or .crc files");
        }
    }

    @Test
    void failedWriteLeavesTheOldFileAndNoTemporary(@TempDir Path dir) throws IOException {
        String target = dir.resolve("out.bin").toString();
        paths.writeAtomically(target, out -> out.write(7));
        IOException e = assertThrows(IOException.class, () -> paths.writeAtomically(target, out -> {
            out.write(new byte[100]);
            throw new IOException("disk full");
        }));
        assertEquals("disk full", e.getMessage());
        assertArrayEquals(new byte[] {7}, Files.readAllBytes(Path.of(target)));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(1, s.count());
        }
    }

    @Test
    void directoriesAreCommittedWholeOrNotAtAll(@TempDir Path dir) throws IOException {
        String target = dir.resolve("model").toString();
        assertThrows(IOException.class, () -> paths.writeDirectoryAtomically(target, tmp -> {
            paths.writeAtomically(HadoopPaths.child(tmp, "a"), out -> out.write(1));
            throw new IOException("boom");
        }));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(0, s.count(), "temporary directory removed");
        }
        paths.writeDirectoryAtomically(target, tmp -> paths.writeAtomically(HadoopPaths.child(tmp, "a"), out -> out.write(1)));
        assertTrue(Files.isRegularFile(Path.of(target, "a")));
        IOException exists = assertThrows(IOException.class, () -> paths.writeDirectoryAtomically(target, tmp -> { }));
        assertTrue(exists.getMessage().contains("already exists"));
    }
}
