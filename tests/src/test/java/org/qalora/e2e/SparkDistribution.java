package org.qalora.e2e;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Spark 4.2 installation made from the Spark jars on the test classpath, laid out as the binary distribution is
 * ({@code SPARK_HOME/jars}, {@code bin/spark-submit}, {@code conf/}), for tests that run our deploy scripts and Spark's
 * own daemons as real processes.
 *
 * <p>{@code jars/} holds what the distribution holds: the Spark artifacts and their dependency closure, and nothing
 * that only our application needs (picocli, snakeyaml, DJL, our modules): those must reach the driver and executors
 * the way the deploy scripts ship them, or the test fails as a user's cluster would. The closure is read from Maven's
 * verbose dependency tree of this module (tests/pom.xml writes it): verbose, because a jar that our modules bring as
 * well (Jackson, say) is expanded under whichever path Maven met first, and listed as "omitted for duplicate" under
 * Spark.
 *
 * <p>{@code bin/spark-submit} does what Spark's {@code bin/spark-submit} and {@code bin/spark-class} do: it asks
 * Spark's launcher ({@code org.apache.spark.launcher.Main}) for the driver's java command line (classpath from
 * {@code jars/} and {@code conf/}, {@code --driver-java-options}, the properties file's driver settings) and runs it.
 * {@code conf/} holds deploy/conf/log4j2.properties, as the image from deploy/Dockerfile does.
 */
final class SparkDistribution {
    /** One line of {@code mvn dependency:tree -Dverbose}: indentation, then {@code (coords - note)} or {@code coords (note)}. */
    private static final Pattern TREE_LINE = Pattern.compile("^([|+\\\\ -]*)\\(?([^\\s():]+):([^\\s():]+):([^\\s():]+)"
            + "(?::([^\\s():]+))?:([^\\s():]+):([^\\s():]+)");

    private final Path home;

    private SparkDistribution(Path home) {
        this.home = home;
    }

    Path home() { return home; }

    Path jars() { return home.resolve("jars"); }

    /** Lays the installation out under {@code home} (emptied first). */
    static SparkDistribution create(Path home, Path repoRoot) throws IOException {
        home = home.toAbsolutePath();
        if (Files.exists(home)) {
            try (java.util.stream.Stream<Path> old = Files.walk(home)) {
                for (Path p : old.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.delete(p); // links are deleted, not followed
                }
            }
        }
        Path tree = Path.of(System.getProperty("qalora.dependency.tree", "target/dependency-tree.txt"));
        if (!Files.isRegularFile(tree)) {
            throw new IllegalStateException(tree + " is missing: tests/pom.xml writes it in generate-test-resources "
                    + "(mvn dependency:tree); run the tests through Maven");
        }
        Map<String, Path> onClasspath = new HashMap<>();
        for (String entry : System.getProperty("surefire.test.class.path").split(File.pathSeparator)) {
            onClasspath.put(Path.of(entry).getFileName().toString(), Path.of(entry));
        }
        Files.createDirectories(home.resolve("jars"));
        Files.createDirectories(home.resolve("bin"));
        Files.createDirectories(home.resolve("conf"));
        for (String jar : sparkClosure(Files.readAllLines(tree))) {
            Path source = onClasspath.get(jar);
            if (source == null) {
                throw new IllegalStateException("the dependency tree names " + jar + " but the test classpath has no "
                        + "such jar: " + tree + " is stale (run mvn again)");
            }
            Files.createSymbolicLink(home.resolve("jars").resolve(jar), source);
        }
        Files.copy(repoRoot.resolve("deploy/conf/log4j2.properties"), home.resolve("conf/log4j2.properties"));
        Path submit = home.resolve("bin/spark-submit");
        Files.writeString(submit, """
                #!/usr/bin/env bash
                # Spark's bin/spark-submit + bin/spark-class: the launcher prints its messages, an empty line, then
                # the driver's command with its arguments NUL-separated.
                set -euo pipefail
                cmd=(); delim=$'\n'; started=false
                while IFS= read -d "$delim" -r arg; do
                  if $started; then cmd+=("$arg"); elif [[ -z "$arg" ]]; then delim=''; started=true; else echo "$arg"; fi
                done < <("$JAVA_HOME/bin/java" -Xmx128m -cp "$SPARK_HOME/jars/*" org.apache.spark.launcher.Main \
                  org.apache.spark.deploy.SparkSubmit "$@")
                if [[ ${#cmd[@]} -eq 0 ]]; then echo "spark-submit: Spark's launcher printed no command" >&2; exit 1; fi
                exec "${cmd[@]}"
                """);
        Files.setPosixFilePermissions(submit, PosixFilePermissions.fromString("rwxr-xr-x"));
        return new SparkDistribution(home);
    }

    /**
     * The jar file names of every {@code org.apache.spark} artifact in the tree and everything they depend on. Each
     * artifact is expanded once in a verbose tree (its other occurrences say "omitted"), so children are collected
     * per artifact from its expansion and the closure is walked over that map.
     */
    static Set<String> sparkClosure(List<String> treeLines) {
        record Node(String key, int depth, boolean omitted) {}
        Map<String, List<String>> children = new HashMap<>();
        Map<String, String> jarName = new LinkedHashMap<>();
        Set<String> otherTypes = new TreeSet<>(); // poms, test-jars: not part of a distribution's jars/
        Deque<Node> parents = new ArrayDeque<>();
        for (String line : treeLines) {
            Matcher m = TREE_LINE.matcher(line);
            if (!m.find()) {
                continue;
            }
            int depth = m.group(1).length() / 3;
            boolean omitted = line.substring(m.group(1).length()).startsWith("(");
            String group = m.group(2);
            String artifact = m.group(3);
            String classifier = m.group(5);
            String version = m.group(6);
            String key = group + ":" + artifact + (classifier == null ? "" : ":" + classifier);
            if (!m.group(4).equals("jar")) {
                otherTypes.add(key);
            } else if (!omitted) {
                jarName.put(key, artifact + "-" + version + (classifier == null ? "" : "-" + classifier) + ".jar");
            }
            while (!parents.isEmpty() && parents.peek().depth() >= depth) {
                parents.pop();
            }
            if (!parents.isEmpty() && !parents.peek().omitted()) {
                children.computeIfAbsent(parents.peek().key(), k -> new ArrayList<>()).add(key);
            }
            parents.push(new Node(key, depth, omitted));
        }
        Set<String> seen = new TreeSet<>();
        Deque<String> todo = new ArrayDeque<>();
        jarName.keySet().stream().filter(k -> k.startsWith("org.apache.spark:")).forEach(todo::add);
        while (!todo.isEmpty()) {
            String key = todo.pop();
            if (seen.add(key)) {
                todo.addAll(children.getOrDefault(key, List.of()));
            }
        }
        Set<String> jars = new TreeSet<>();
        for (String key : seen) {
            if (otherTypes.contains(key) && !jarName.containsKey(key)) {
                continue;
            }
            String name = jarName.get(key);
            if (name == null) {
                throw new IllegalStateException("the dependency tree never expands " + key + " (a Spark dependency)");
            }
            jars.add(name);
        }
        return jars;
    }
}
