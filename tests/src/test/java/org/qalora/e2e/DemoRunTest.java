package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.testing.Fixtures;

/**
 * {@code bin/qalora train} with no arguments on a fresh clone: clones the repository's committed state, runs the
 * README's setup (the build {@code bin/qalora} would run on first use, offline here), removes the test data
 * ({@code fixtures/}), then runs the launcher with no arguments in an empty working directory, and checks that it
 * published a model and said where.
 */
@Timeout(value = 12, unit = TimeUnit.MINUTES)
class DemoRunTest {
    @TempDir
    Path tmp;

    private static String run(Path dir, Path log, String... command) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        Process p = pb.start();
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " did not finish in 10 minutes");
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), String.join(" ", command) + " failed:\n" + tail(out));
        return out;
    }

    private static String tail(String s) {
        return s.length() > 6000 ? s.substring(s.length() - 6000) : s;
    }

    @Test
    void binQaloraTrainWithNoArgumentsSucceedsOnAFreshClone() throws Exception {
        Path repo = Fixtures.root().getParent();
        assumeTrue(Files.exists(repo.resolve(".git")), "not a git checkout: nothing to clone");
        Path clone = tmp.resolve("clone");
        run(tmp, tmp.resolve("clone.log"), "git", "clone", "--quiet", "--no-hardlinks", repo.toString(), clone.toString());
        // The README's setup: build the launcher's classpath (bin/qalora does the same on first use).
        run(clone, tmp.resolve("build.log"), "mvn", "-o", "-B", "-q", "-DskipTests", "package", "-pl", "driver", "-am");
        // fixtures/ is test data: the demo must run from samples/ alone.
        run(clone, tmp.resolve("rm.log"), "rm", "-rf", "fixtures");
        Path work = Files.createDirectories(tmp.resolve("work"));
        long t0 = System.nanoTime();
        String out = run(work, tmp.resolve("train.log"), clone.resolve("bin/qalora").toString(), "train");
        double seconds = (System.nanoTime() - t0) / 1e9;
        List<String> lines = out.lines().filter(l -> l.startsWith("qalora: ")).toList();
        assertTrue(lines.stream().anyMatch(l -> l.contains("NOT a trained model")), String.join("\n", lines));
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("qalora: round 3/3: loss")), String.join("\n", lines));
        String done = lines.stream().filter(l -> l.startsWith("qalora: done: merged quantized model in ")).findFirst()
                .orElseThrow(() -> new AssertionError(tail(out)));
        Path output = work.resolve("qalora-output");
        String latest = Files.readString(output.resolve("LATEST")).trim();
        assertTrue(done.contains(output.resolve(latest).toString()), done);
        assertTrue(Files.isRegularFile(output.resolve(latest).resolve("_MANIFEST.json")));
        assertTrue(Files.isRegularFile(output.resolve(latest).resolve("adapter/adapter_model.safetensors")));
        assertEquals(3, Files.readAllLines(output.resolve("checkpoints/metrics.jsonl")).size());
        System.out.printf("bin/qalora train (demo) took %.1f s%n", seconds);
    }
}
