package org.qalora.driver.config;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.RecordComponent;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.YAMLException;

/**
 * Builds a {@link TrainJob} from three layers, each overriding the one before: the embedded defaults (the demo
 * run), a YAML job file (keys are the flag names without dashes: {@code steps-per-round: 8}), and the command-line
 * flags. Unknown keys and wrong types are errors that name the key and the file.
 */
public final class TrainJobLoader {
    /** The YAML keys: the flag names of {@link TrainSetting}. */
    public static final Set<String> KEYS = keys();

    /** The source name when there is no job file: the command line alone; its errors carry no file prefix. */
    public static final String FLAGS = "flags";

    private TrainJobLoader() {}

    private static Set<String> keys() {
        Set<String> keys = new LinkedHashSet<>();
        for (TrainSetting s : TrainSetting.values()) {
            keys.add(s.flag());
        }
        return Collections.unmodifiableSet(keys);
    }

    /**
     * The embedded defaults: the demo run (bundled demo model generated on first use, bundled sample data, Spark
     * local mode), small enough to finish in about a minute on 2 cores. {@code repoRoot} locates the samples.
     */
    public static Map<String, Object> defaults(String repoRoot) {
        Map<String, Object> d = new LinkedHashMap<>();
        for (TrainSetting s : TrainSetting.values()) {
            d.put(s.flag(), s.defaultValue(repoRoot));
        }
        return d;
    }

    /** Parses a YAML job file's text ({@code name} is used in errors). */
    public static Map<String, Object> parseYaml(String text, String name) {
        Object doc;
        try {
            // SafeConstructor: only maps, lists, strings, numbers, booleans, null and timestamps; a global tag such as
            // !!javax.script.ScriptEngineManager is refused, never instantiated. A repeated key is an error, not
            // "last one wins"; alias expansion and nesting keep SnakeYAML's limits (50 aliases, depth 50).
            LoaderOptions options = new LoaderOptions();
            options.setAllowDuplicateKeys(false);
            doc = new Yaml(new SafeConstructor(options)).load(text);
        } catch (YAMLException e) {
            throw new IllegalArgumentException("job file " + name + " is not valid YAML: " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            // SafeConstructor lets NumberFormatException out for an explicit scalar tag it cannot honour
            // ("!!float abc", "!!int 1.5"): report it as the bad YAML it is, naming the file.
            throw new IllegalArgumentException("job file " + name + " is not valid YAML: " + e.getMessage(), e);
        }
        if (doc == null) {
            return Map.of();
        }
        if (!(doc instanceof Map<?, ?> map)) {
            throw new IllegalArgumentException("job file " + name + " must be a YAML mapping of settings (e.g. "
                    + "'rounds: 4'), found " + doc.getClass().getSimpleName());
        }
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            String key = String.valueOf(e.getKey());
            if (!KEYS.contains(key)) {
                throw new IllegalArgumentException("job file " + name + ": unknown setting '" + key + "'; known: "
                        + new TreeSet<>(KEYS));
            }
            out.put(key, e.getValue());
        }
        return out;
    }

    public static String readText(java.nio.file.Path file) {
        try {
            return java.nio.file.Files.readString(file, StandardCharsets.UTF_8);
        } catch (java.nio.file.NoSuchFileException e) {
            // The exception's message is the path alone, which made "cannot read job file X: X".
            throw new IllegalArgumentException("job file " + file.toAbsolutePath() + " does not exist: check --job", e);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read job file " + file.toAbsolutePath() + " ("
                    + e.getClass().getSimpleName() + ": " + e.getMessage() + ")", e);
        }
    }

    /** Merges the layers (later wins; a null in a later layer means "not given") and builds the job. */
    @SafeVarargs
    public static TrainJob build(String source, Map<String, Object>... layers) {
        Map<String, Object> m = merge(layers);
        try {
            return job(m, source);
        } catch (IllegalArgumentException e) {
            if (source.equals(FLAGS) || e.getMessage() != null && e.getMessage().startsWith(source + ":")) {
                throw e;
            }
            if (e instanceof InvalidSettingsException invalid) {   // name the job file in every error
                throw new InvalidSettingsException(source + ": bad train settings", invalid.problems());
            }
            throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
        }
    }

    /** The layers merged, later over earlier (a null in a later layer means "not given"). */
    @SafeVarargs
    public static Map<String, Object> merge(Map<String, Object>... layers) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Map<String, Object> layer : layers) {
            for (Map.Entry<String, Object> e : layer.entrySet()) {
                if (e.getValue() != null || !m.containsKey(e.getKey())) {
                    m.put(e.getKey(), e.getValue());
                }
            }
        }
        return m;
    }

    /** The path settings of merged layers ({@code model}, {@code data}, ...), for checks made without a job. */
    public static List<String> paths(Map<String, Object> merged, String key) {
        return TrainSetting.strings(merged.get(key));
    }

    /**
     * The job's record built through its canonical constructor: each component is the setting of the same name
     * ({@link TrainSetting#camelCase}), read with that setting's type, so a setting added to the declaration and the
     * record needs no line here (TrainSettingCoverageTest checks the two name the same settings).
     */
    private static TrainJob job(Map<String, Object> m, String source) {
        RecordComponent[] components = TrainJob.class.getRecordComponents();
        Object[] args = new Object[components.length];
        Class<?>[] types = new Class<?>[components.length];
        for (int i = 0; i < components.length; i++) {
            String name = components[i].getName();
            TrainSetting setting = Arrays.stream(TrainSetting.values()).filter(s -> s.camelCase().equals(name))
                    .findFirst().orElseThrow(() -> new IllegalStateException("TrainJob." + name + " is not declared"
                            + " in TrainSetting"));
            args[i] = setting.read(m, source);
            types[i] = components[i].getType();
        }
        try {
            return TrainJob.class.getDeclaredConstructor(types).newInstance(args);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof RuntimeException r) {   // the record's own validation: InvalidSettingsException
                throw r;
            }
            throw new IllegalStateException(e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("TrainJob's canonical constructor", e);
        }
    }
}
