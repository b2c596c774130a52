package org.qalora.datasets;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the repository's fixtures and samples from the {@code qalora.root} property surefire sets. */
public final class TestFiles {
    private TestFiles() {}

    public static Path root() {
        String root = System.getProperty("qalora.root");
        Path p = root != null ? Path.of(root) : Path.of("..").toAbsolutePath().normalize();
        if (!Files.isDirectory(p.resolve("fixtures"))) {
            throw new IllegalStateException("fixtures/ not found under " + p + "; run the tests through Maven");
        }
        return p;
    }

    public static Path tokenizerDir() {
        return root().resolve("fixtures/tokenizer");
    }

    public static byte[] read(Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static org.qalora.datasets.tokenize.TextTokenizer fixtureTokenizer() {
        return org.qalora.datasets.tokenize.TextTokenizer.shared(read(tokenizerDir().resolve("tokenizer.json")),
                read(tokenizerDir().resolve("tokenizer_config.json")), "fixtures/tokenizer/tokenizer.json");
    }
}
