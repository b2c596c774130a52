package org.qalora.driver.cli;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.driver.config.TrainSetting;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * Adds one option per {@link TrainSetting} to {@code qalora train}, right after picocli built the command from its
 * annotations, so that the flags, their types, labels and help come from the declaration alone. The help lists them
 * as it always has: {@code --job} first, the settings in declaration order with {@code --force} before
 * {@code --max-shard-size}, then {@code --conf} and the standard help options.
 */
public final class TrainOptions implements CommandLine.IModelTransformer {
    @Override
    public CommandSpec transform(CommandSpec spec) {
        // The annotated options that the help shows after the settings: taken out, added back in their place.
        List<OptionSpec> after = spec.options().stream().filter(o -> !o.longestName().equals("--job")).toList();
        after.forEach(spec::remove);
        OptionSpec force = find(after, "--force");
        for (TrainSetting s : TrainSetting.values()) {
            if (s == TrainSetting.MAX_SHARD_SIZE) {
                spec.addOption(force);
            }
            spec.addOption(option(s));
        }
        after.stream().filter(o -> o != force).forEach(spec::addOption);
        return spec;
    }

    private static OptionSpec option(TrainSetting s) {
        OptionSpec.Builder b = OptionSpec.builder(s.option()).type(s.kind().cliType()).description(s.help());
        if (s.kind() == TrainSetting.Kind.STRINGS) {
            b.auxiliaryTypes(String.class).arity("1..*");
        }
        if (s.kind() == TrainSetting.Kind.BOOLEAN) {
            b.negatable(true).arity("0");
        } else {
            b.paramLabel(s.paramLabel());
        }
        return b.build();
    }

    private static OptionSpec find(List<OptionSpec> options, String name) {
        return options.stream().filter(o -> o.longestName().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalStateException("qalora train has no " + name + " option"));
    }

    /** The settings given on the command line, by flag name; null for the ones not given. */
    static Map<String, Object> given(CommandSpec spec) {
        Map<String, Object> flags = new LinkedHashMap<>();
        for (TrainSetting s : TrainSetting.values()) {
            flags.put(s.flag(), spec.findOption(s.option()).getValue());
        }
        return flags;
    }
}
