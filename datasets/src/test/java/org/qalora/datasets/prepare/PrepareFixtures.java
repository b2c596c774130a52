package org.qalora.datasets.prepare;

import org.qalora.datasets.TestFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Small input files for prepare tests. */
final class PrepareFixtures {
    private PrepareFixtures() {}

    static String tokenizer() {
        return TestFiles.tokenizerDir().resolve("tokenizer.json").toString();
    }

    static Path write(Path dir, String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, content, StandardCharsets.UTF_8);
        return p;
    }

    static Path writeBytes(Path dir, String name, byte[] content) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, content);
        return p;
    }

    static String good(int i) {
        return "{\"instruction\": \"Add " + i + " and " + (i + 1) + ".\", \"input\": \"\", \"output\": \"" + (2 * i + 1)
                + "\"}";
    }

    static String goodWithInput(int i) {
        return "{\"instruction\": \"Reverse the word.\", \"input\": \"word" + i + "\", \"output\": \""
                + new StringBuilder("word" + i).reverse() + "\"}";
    }

    static String lines(List<String> l) {
        return String.join("\n", l) + "\n";
    }

    /** UTF-8 bytes of {@code before}, then an invalid sequence (0xC3 0x28), then {@code after}. */
    static byte[] withInvalidUtf8(String before, String after) {
        byte[] a = before.getBytes(StandardCharsets.UTF_8);
        byte[] b = after.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[a.length + 2 + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        out[a.length] = (byte) 0xC3;
        out[a.length + 1] = (byte) 0x28;
        System.arraycopy(b, 0, out, a.length + 2, b.length);
        return out;
    }
}
