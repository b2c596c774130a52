package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * deploy/Dockerfile without a Docker engine (none runs here): every path it copies from the checkout exists once the
 * Maven build has run (this module runs after the driver's package phase, which fills driver/target/lib), nothing is
 * downloaded during the build, every script it installs is made executable, and the paths the Helm chart points at
 * (the application jar, the GPU discovery script) are where the image puts them. Spark itself comes from the named
 * build context {@code spark} (an unpacked distribution), which this machine does not have.
 */
class DockerfileTest {
    private static final Path ROOT = Path.of(System.getProperty("qalora.root", ".."));

    private record Copy(String from, List<String> sources, String destination) {}

    @Test
    void everyPathCopiedFromTheCheckoutExistsAfterTheBuild() throws IOException {
        List<Copy> fromCheckout = copies().stream().filter(c -> c.from() == null).toList();
        assertTrue(fromCheckout.size() >= 4, "COPY lines from the checkout: " + fromCheckout);
        for (Copy c : fromCheckout) {
            for (String source : c.sources()) {
                List<Path> matches = matches(source);
                assertFalse(matches.isEmpty(), "the Dockerfile copies " + source + ", which the build did not make"
                        + " (run `mvn -B -DskipTests package -pl driver -am` first)");
                if (source.endsWith("/")) {
                    try (Stream<Path> files = Files.list(matches.getFirst())) {
                        assertTrue(files.findAny().isPresent(), source + " is empty");
                    }
                }
                if (source.endsWith(".jar")) {
                    assertEquals(1, matches.size(), source + " must name exactly one jar, not the tests jar: " + matches);
                }
            }
        }
    }

    @Test
    void theBuildDownloadsNothingAndSparkComesFromTheNamedContext() throws IOException {
        for (String line : instructions()) {
            String lower = line.toLowerCase();
            assertFalse(lower.startsWith("add ") && lower.contains("://"), "ADD from a URL: " + line);
            if (lower.startsWith("run ")) {
                for (String tool : new String[] {"curl ", "wget ", "mvn ", "pip "}) {
                    assertFalse(lower.contains(tool), "the build must not download with " + tool.trim() + ": " + line);
                }
            }
        }
        List<Copy> fromSpark = copies().stream().filter(c -> "spark".equals(c.from())).toList();
        assertTrue(fromSpark.stream().anyMatch(c -> c.sources().contains("jars")), "Spark's jars from the context");
        assertTrue(copies().stream().allMatch(c -> c.from() == null || c.from().equals("spark")),
                "the only other stage is the named build context 'spark': " + copies());
    }

    @Test
    void installedScriptsAreExecutableAndTheChartPointsAtThem() throws IOException {
        String chmod = instructions().stream().filter(l -> l.startsWith("RUN ") && l.contains("chmod +x"))
                .findFirst().orElseThrow(() -> new AssertionError("no RUN ... chmod +x"));
        String entrypoint = instructions().stream().filter(l -> l.startsWith("ENTRYPOINT")).findFirst().orElseThrow();
        for (Copy c : copies()) {
            if (c.destination().endsWith(".sh")) {
                assertTrue(chmod.contains(c.destination()), c.destination() + " is installed but not made executable");
            }
        }
        assertTrue(entrypoint.contains("/opt/entrypoint.sh"), entrypoint);
        assertTrue(Files.isExecutable(ROOT.resolve("deploy/gpu-discovery.sh")), "deploy/gpu-discovery.sh mode");
        String spec = Files.readString(ROOT.resolve("helm/qalora/templates/_spec.tpl"));
        for (String installed : new String[] {"/opt/qalora/lib/qalora-driver.jar", "/opt/qalora/deploy/gpu-discovery.sh"}) {
            assertTrue(copies().stream().anyMatch(c -> c.destination().equals(installed)), "image lacks " + installed);
            assertTrue(spec.contains(installed), "the chart does not point at " + installed);
        }
    }

    /** The Dockerfile's instructions, continuation lines joined, comments dropped. */
    private static List<String> instructions() throws IOException {
        List<String> out = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String raw : Files.readAllLines(ROOT.resolve("deploy/Dockerfile"))) {
            String line = raw.strip();
            if (line.startsWith("#") || line.isEmpty()) {
                continue;
            }
            boolean continues = line.endsWith("\\");
            current.append(continues ? line.substring(0, line.length() - 1) : line).append(' ');
            if (!continues) {
                out.add(current.toString().strip());
                current.setLength(0);
            }
        }
        return out;
    }

    private static List<Copy> copies() throws IOException {
        List<Copy> out = new ArrayList<>();
        for (String line : instructions()) {
            if (!line.startsWith("COPY ")) {
                continue;
            }
            List<String> words = new ArrayList<>(Arrays.asList(line.substring(5).trim().split("\\s+")));
            String from = null;
            if (words.getFirst().startsWith("--from=")) {
                from = words.removeFirst().substring("--from=".length());
            }
            String destination = words.removeLast();
            out.add(new Copy(from, words, destination));
        }
        return out;
    }

    /** Paths of the checkout that a COPY source (a path or a glob in its file name) names. */
    private static List<Path> matches(String source) throws IOException {
        String clean = source.endsWith("/") ? source.substring(0, source.length() - 1) : source;
        Path path = ROOT.resolve(clean);
        if (!clean.contains("*") && !clean.contains("[")) {
            return Files.exists(path) ? List.of(path) : List.of();
        }
        PathMatcher glob = FileSystems.getDefault().getPathMatcher("glob:" + path.getFileName());
        try (Stream<Path> files = Files.list(path.getParent())) {
            return files.filter(p -> glob.matches(p.getFileName())).toList();
        }
    }
}
