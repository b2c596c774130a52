package org.qalora.driver.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.RecordComponent;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.qalora.driver.api.QaloraTraining;
import org.qalora.driver.cli.TrainCommand;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The {@link TrainSetting} declaration is the only list of train settings: the command's flags, the job file's keys
 * and defaults, the job record's components and the notebook builder all name exactly the declared settings (the Helm
 * chart is checked against it in HelmChartTest, the SQL procedure in QaloraProcedureCatalogTest).
 */
class TrainSettingCoverageTest {
    private static final Set<String> DECLARED = Arrays.stream(TrainSetting.values()).map(TrainSetting::flag)
            .collect(Collectors.toCollection(TreeSet::new));

    @Test
    void theCommandHasOneOptionPerSettingWithTheDeclaredTypeLabelAndHelp() {
        CommandLine.Model.CommandSpec train = new CommandLine(new TrainCommand()).getCommandSpec();
        Set<String> notSettings = Set.of("--job", "--force", "--conf", "--help", "--version");
        Set<String> flags = train.options().stream().map(OptionSpec::longestName).filter(n -> !notSettings.contains(n))
                .map(n -> n.substring(2)).collect(Collectors.toCollection(TreeSet::new));
        assertEquals(DECLARED, flags);
        for (TrainSetting s : TrainSetting.values()) {
            OptionSpec o = train.findOption(s.option());
            assertEquals(s.kind().cliType(), o.type(), s.flag());
            assertEquals(List.of(s.help()), List.of(o.description()), s.flag());
            if (s.kind() == TrainSetting.Kind.BOOLEAN) {
                assertTrue(o.negatable(), s.flag() + " must take --no-" + s.flag());
            } else {
                assertEquals(s.paramLabel(), o.paramLabel(), s.flag());
            }
        }
    }

    @Test
    void theJobFileKeysDefaultsAndRecordAreTheDeclaredSettings() {
        assertEquals(DECLARED, new TreeSet<>(TrainJobLoader.KEYS));
        assertEquals(DECLARED, new TreeSet<>(TrainJobLoader.defaults("/repo").keySet()));
        Set<String> components = Arrays.stream(TrainJob.class.getRecordComponents()).map(RecordComponent::getName)
                .collect(Collectors.toCollection(TreeSet::new));
        Set<String> camel = Arrays.stream(TrainSetting.values()).map(TrainSetting::camelCase)
                .collect(Collectors.toCollection(TreeSet::new));
        assertEquals(camel, components, "TrainJob's components are the settings in camel case");
        // Each declared default reaches the record unchanged (the demo run is the declaration's defaults).
        TrainJob demo = TrainJobLoader.build("t", TrainJobLoader.defaults("/repo"));
        assertEquals(List.of("/repo/samples/alpaca-sample.json"), demo.data());
        assertEquals(3, demo.rounds());
        assertEquals(0, demo.groupByLength(), "off");
        assertEquals(42L, demo.seed());
        assertEquals(null, demo.lr());
        assertEquals("local[*]", demo.master());
    }

    /** The help text states each declared default, so that the two cannot drift apart unseen. */
    @Test
    void eachHelpTextStatesTheDeclaredDefault() {
        for (TrainSetting s : TrainSetting.values()) {
            Object d = s.defaultValue("/repo");
            String shown = switch (d) {
                case null -> null;
                case Boolean b -> b ? "on" : "off";
                case Double x when x == Math.rint(x) -> String.valueOf(x.longValue());
                case List<?> l when l.isEmpty() -> "none";
                case List<?> l -> String.valueOf(l.getFirst()).replace("/repo/", "");
                default -> String.valueOf(d);
            };
            assertTrue(d == null ? s.help().contains("default: ") : s.help().contains("default " + shown)
                    || s.help().contains("default: " + shown), s.flag() + " defaults to " + shown + ": " + s.help());
        }
    }

    /** Every word of a choice setting is taken by the job record, and a word outside them is refused there. */
    @Test
    void theDeclaredChoicesAreWhatTheJobAccepts() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        for (TrainSetting s : TrainSetting.values()) {
            if (s.kind() != TrainSetting.Kind.CHOICE) {
                continue;
            }
            for (String word : s.choices()) {
                Map<String, Object> layer = s == TrainSetting.PRECISION && word.equals("bf16")
                        ? Map.of(s.flag(), word, "device", "gpu") : Map.of(s.flag(), word);
                TrainJobLoader.build("t", d, layer);
            }
            assertThrows(InvalidSettingsException.class, () -> TrainJobLoader.build("t", d, Map.of(s.flag(), "nonsense")),
                    s.flag());
        }
    }

    @Test
    void theBuilderTakesTheSessionSettings() {
        Set<String> session = Arrays.stream(TrainSetting.values()).filter(TrainSetting::onSession)
                .map(TrainSetting::flag).collect(Collectors.toCollection(TreeSet::new));
        assertEquals(session, new TreeSet<>(QaloraTraining.sessionSettings()));
        assertEquals(Set.of("master"), new TreeSet<>(DECLARED).stream().filter(f -> !session.contains(f))
                .collect(Collectors.toSet()), "only master is the session's own");
    }
}
