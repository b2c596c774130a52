package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The JVM flags are written once, in deploy/conf/jvm-flags. The scripts read that file; the places that cannot
 * (the root pom, which surefire and the test executors use; spark-defaults.conf; the Helm chart) must hold exactly
 * its list, as bin/sync-jvm-flags writes it. A failure here names the place and the fix.
 */
class JvmFlagsTest {
    private static final Path ROOT = Path.of(System.getProperty("qalora.root", ".."));
    private static final String FIX = " (edit deploy/conf/jvm-flags only, then run bin/sync-jvm-flags)";

    private static String flags() throws IOException {
        List<String> lines = Files.readAllLines(ROOT.resolve("deploy/conf/jvm-flags")).stream().map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        assertTrue(lines.contains("--enable-native-access=ALL-UNNAMED") && lines.contains("--add-modules=jdk.incubator.vector")
                && lines.contains("--sun-misc-unsafe-memory-access=allow"), "deploy/conf/jvm-flags lost a needed flag: " + lines);
        return String.join(" ", lines);
    }

    @Test
    void thePlacesThatCannotReadTheFileHoldItsList() throws IOException {
        String want = flags();
        assertEquals(want, group("pom.xml", "<qalora\\.jvm\\.flags>(.*?)</qalora\\.jvm\\.flags>"), "pom.xml" + FIX);
        assertEquals(want, System.getProperty("qalora.jvm.flags"), "the flags this test JVM's executors get" + FIX);
        for (String role : new String[] {"driver", "executor"}) {
            assertEquals(want, group("deploy/conf/spark-defaults.conf",
                    "(?m)^spark\\." + role + "\\.extraJavaOptions[ \\t]+([^\\n]*)$"), "spark-defaults.conf " + role + FIX);
        }
        assertEquals(want, group("helm/qalora/templates/_helpers.tpl",
                "\\{\\{- define \"qalora\\.javaOptions\" -\\}\\}\\n(.*?)\\n\\{\\{- end -\\}\\}"), "the Helm chart" + FIX);
    }

    @Test
    void theScriptsReadTheFileInsteadOfListingFlags() throws IOException {
        for (String script : new String[] {"bin/qalora", "deploy/common.sh", "deploy/spark-submit-k8s.sh"}) {
            String text = Files.readString(ROOT.resolve(script));
            assertTrue(text.contains("conf/jvm-flags"), script + " must read deploy/conf/jvm-flags");
            assertFalse(text.contains("--add-opens"), script + " lists JVM flags of its own" + FIX);
        }
    }

    private static String group(String file, String regex) throws IOException {
        Matcher m = Pattern.compile(regex, Pattern.DOTALL).matcher(Files.readString(ROOT.resolve(file)));
        assertTrue(m.find(), file + " has no place for the JVM flags (" + regex + ")");
        return m.group(1).strip();
    }
}
