package org.qalora.datasets;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a class's {@code main} in a fresh JVM with this test JVM's classpath and flags (the surefire argLine: the
 * Vector API, the opens Spark's Kryo needs), for tests whose point is that two processes agree: identity hash
 * codes, and with them any HashSet order of enums, differ between processes but not inside one.
 */
public final class JvmProcess {
    private JvmProcess() {}

    /** Runs {@code mainClass} with {@code args}; returns its combined stdout and stderr, or fails with them. */
    public static String run(Class<?> mainClass, Path log, List<String> jvmOptions, List<String> args)
            throws IOException, InterruptedException {
        String java = ProcessHandle.current().info().command().orElse(
                Path.of(System.getProperty("java.home"), "bin", "java").toString());
        // Surefire puts the test classpath here; java.class.path may be its booter jar only.
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<String> command = new ArrayList<>();
        command.add(java);
        // This JVM's own flags (--add-opens, --add-modules, -Xmx), minus debugger or agent options tied to this JVM.
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!a.startsWith("-agentlib") && !a.startsWith("-javaagent") && !a.startsWith("-Xrunjdwp")) {
                command.add(a);
            }
        }
        command.addAll(jvmOptions);
        command.add("-cp");
        command.add(cp);
        command.add(mainClass.getName());
        command.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        Process p = pb.start();
        if (!p.waitFor(3, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError(mainClass.getSimpleName() + " did not finish in 3 minutes; log: " + log);
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new AssertionError(mainClass.getSimpleName() + " " + String.join(" ", args) + " exited with "
                    + p.exitValue() + ":\n" + (out.length() > 6000 ? out.substring(out.length() - 6000) : out));
        }
        return out;
    }
}
