package org.qalora.driver.config;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.quant.safetensors.ShardSize;
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
    public static final Set<String> KEYS = Set.of("model", "data", "eval-data", "eval-every", "tokenizer", "output", "rounds", "steps-per-round",
            "slots", "batch-size", "group-by-length", "micro-batch-tokens", "master", "seed", "method", "bits", "group-size", "rank",
            "alpha", "lr", "pooling", "dropout", "template", "keep-rounds", "device", "precision", "recompute",
            "lr-schedule", "warmup-steps", "skip-bad-records", "source-max-len", "target-max-len",
            "max-shard-size", "quantize", "calibration", "calibration-samples", "calibration-tokens");

    /** The source name when there is no job file: the command line alone; its errors carry no file prefix. */
    public static final String FLAGS = "flags";

    private TrainJobLoader() {}

    /**
     * The embedded defaults: the demo run (bundled demo model generated on first use, bundled sample data, Spark
     * local mode), small enough to finish in about a minute on 2 cores. {@code repoRoot} locates the samples.
     */
    public static Map<String, Object> defaults(String repoRoot) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("model", null);
        d.put("data", List.of(repoRoot + "/samples/alpaca-sample.json"));
        d.put("eval-data", List.of());
        d.put("eval-every", 1);
        d.put("tokenizer", null);
        d.put("output", "qalora-output");
        d.put("rounds", 3);
        d.put("steps-per-round", 2);
        d.put("slots", 2);
        d.put("batch-size", 32);
        d.put("group-by-length", "off");
        d.put("micro-batch-tokens", 512);
        d.put("master", "local[*]");
        d.put("seed", 42L);
        d.put("method", "qalora");
        d.put("bits", 4);
        d.put("group-size", 32);
        d.put("rank", 8);
        d.put("alpha", 16.0);
        d.put("lr", null);
        d.put("pooling", "mean");
        d.put("dropout", 0.05);
        d.put("template", "auto");
        d.put("keep-rounds", 2);
        d.put("device", "auto");
        d.put("precision", "auto");
        d.put("recompute", false);
        d.put("lr-schedule", "constant");
        d.put("warmup-steps", 0);
        d.put("skip-bad-records", false);
        d.put("source-max-len", ExampleEncoder.Settings.QALORA.sourceMaxLen());
        d.put("target-max-len", ExampleEncoder.Settings.QALORA.targetMaxLen());
        d.put("max-shard-size", ShardSize.DEFAULT);
        // The paper's GPTQ calibration; the demo's small sample caps it (one sequence of the sample's tokens).
        d.put("quantize", "gptq");
        d.put("calibration", null);
        d.put("calibration-samples", 128);
        d.put("calibration-tokens", 2048);
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
        return strings(merged, key, FLAGS);
    }

    private static TrainJob job(Map<String, Object> m, String source) {
        return new TrainJob(str(m, "model", source), strings(m, "data", source), strings(m, "eval-data", source),
                integer(m, "eval-every", source), str(m, "tokenizer", source),
                str(m, "output", source), integer(m, "rounds", source), integer(m, "steps-per-round", source),
                integer(m, "slots", source), integer(m, "batch-size", source), megaBatch(m, "group-by-length", source),
                integer(m, "micro-batch-tokens", source),
                str(m, "master", source), number(m, "seed", source).longValue(), str(m, "method", source),
                integer(m, "bits", source), integer(m, "group-size", source), integer(m, "rank", source),
                number(m, "alpha", source).doubleValue(),
                m.get("lr") == null ? null : number(m, "lr", source).doubleValue(), str(m, "pooling", source),
                number(m, "dropout", source).doubleValue(), str(m, "template", source), integer(m, "keep-rounds", source),
                str(m, "device", source), str(m, "precision", source), bool(m, "recompute", source),
                str(m, "lr-schedule", source), integer(m, "warmup-steps", source), bool(m, "skip-bad-records", source),
                integer(m, "source-max-len", source), integer(m, "target-max-len", source),
                str(m, "max-shard-size", source), str(m, "quantize", source), str(m, "calibration", source),
                integer(m, "calibration-samples", source), integer(m, "calibration-tokens", source));
    }

    private static String str(Map<String, Object> m, String key, String source) {
        Object v = m.get(key);
        if (v == null) {
            return null;
        }
        if (v instanceof Map || v instanceof List) {
            throw new IllegalArgumentException(source + ": '" + key + "' must be a single value, got " + v);
        }
        return String.valueOf(v);
    }

    private static List<String> strings(Map<String, Object> m, String key, String source) {
        Object v = m.get(key);
        if (v == null) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        if (v instanceof List<?> list) {
            for (Object o : list) {
                out.add(String.valueOf(o));
            }
        } else {
            out.add(String.valueOf(v));
        }
        return out;
    }

    private static Number number(Map<String, Object> m, String key, String source) {
        Object v = m.get(key);
        if (v instanceof Number n) {
            return n;
        }
        try {
            return Double.parseDouble(String.valueOf(v));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(source + ": '" + key + "' must be a number, got '" + v + "'");
        }
    }

    private static boolean bool(Map<String, Object> m, String key, String source) {
        Object v = m.get(key);
        if (v == null) {
            return false;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        String s = String.valueOf(v).trim();
        if (s.equalsIgnoreCase("true") || s.equalsIgnoreCase("false")) {
            return Boolean.parseBoolean(s);
        }
        throw new IllegalArgumentException(source + ": '" + key + "' must be true or false, got '" + v + "'");
    }

    /**
     * {@code off} (YAML 1.1 also reads a bare {@code off} or {@code false} as the boolean false) is 0; otherwise a
     * whole number, the mega-batch size.
     */
    private static int megaBatch(Map<String, Object> m, String key, String source) {
        Object v = m.get(key);
        if (v == null || Boolean.FALSE.equals(v) || String.valueOf(v).trim().equalsIgnoreCase("off")) {
            return 0;
        }
        if (v instanceof Boolean) {
            throw new IllegalArgumentException(source + ": '" + key + "' must be off or a mega-batch size (records), "
                    + "got " + v);
        }
        try {
            return integer(m, key, source);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(source + ": '" + key + "' must be off or a mega-batch size (records), "
                    + "got '" + v + "'");
        }
    }

    private static int integer(Map<String, Object> m, String key, String source) {
        Number n = number(m, key, source);
        if (n.doubleValue() != Math.rint(n.doubleValue()) || Math.abs(n.doubleValue()) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(source + ": '" + key + "' must be a whole number, got " + n);
        }
        return n.intValue();
    }
}
