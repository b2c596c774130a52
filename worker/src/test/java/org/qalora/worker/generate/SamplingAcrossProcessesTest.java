package org.qalora.worker.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded sampling gives the same tokens in another JVM (with another thread count): nothing in the draw depends on
 * the process (identity hashes, timing) or on how the CPU backend splits its work.
 */
class SamplingAcrossProcessesTest {
    @TempDir
    Path tmp;

    @Test
    void aSeededSampleIsTheSameInAFreshJvm() throws Exception {
        List<String> here = new ArrayList<>();
        for (int[] tokens : SampleMain.sample(2)) {
            here.add("tokens " + Arrays.toString(tokens));
        }
        String java = ProcessHandle.current().info().command().orElse(
                Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> command = new ArrayList<>(List.of(java));
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!a.startsWith("-agentlib") && !a.startsWith("-javaagent")) {
                command.add(a); // --add-modules jdk.incubator.vector and the rest of surefire's argLine
            }
        }
        command.addAll(List.of("-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                SampleMain.class.getName(), "1"));
        Path log = tmp.resolve("child.log");
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(2, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("the child JVM did not finish in 2 minutes: " + log);
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        List<String> there = out.lines().filter(l -> l.startsWith("tokens ")).toList();
        assertEquals(here, there);
    }
}
