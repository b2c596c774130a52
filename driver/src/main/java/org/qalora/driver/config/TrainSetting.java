package org.qalora.driver.config;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.quant.safetensors.ShardSize;

/**
 * Every {@code train} setting, declared once: the constant's name spelled in kebab case is the flag and the YAML key
 * ({@code STEPS_PER_ROUND}: {@code --steps-per-round}, {@code steps-per-round: 8}), in camel case the {@link TrainJob}
 * component and the Helm value ({@code train.stepsPerRound}), with underscores the SQL {@code CALL} argument
 * ({@code steps_per_round}). The command's options ({@code TrainOptions}), the job file's keys and defaults
 * ({@link TrainJobLoader}), the job record, the notebook builder's {@code set}, the parameters of
 * {@code CALL qalora.system.train} and the Helm chart's {@code train:} values are all derived from this list; {@code TrainSettingCoverageTest} and
 * {@code HelmChartTest} check that none of them has a setting of its own.
 */
public enum TrainSetting {
    MODEL(Kind.STRING, null, "DIR", "HF or GPTQ checkpoint (any Hadoop path); default: the generated demo model"),
    DATA(Kind.STRINGS, root -> List.of(root + "/samples/alpaca-sample.json"), "PATH", "raw records (JSON, JSONL, Parquet; Alpaca or FLAN) or one prepared dataset directory; default: samples/alpaca-sample.json", Helm.TRAIN, true),
    EVAL_DATA(Kind.STRINGS, List.of(), "PATH", "held-out records (same forms as --data): the loss of each evaluated round's averaged adapter over all their target tokens goes to metrics.jsonl and the progress line; default none"),
    EVAL_EVERY(Kind.INT, 1, "K", "with --eval-data: the held-out loss after every K-th round and after the last; default 1"),
    TOKENIZER(Kind.STRING, null, "FILE", "tokenizer.json; default: the model's"),
    OUTPUT(Kind.STRING, "qalora-output", "DIR", "run directory (checkpoints, published models); default: qalora-output"),
    ROUNDS(Kind.INT, 3, "N", "training rounds; default 3"),
    STEPS_PER_ROUND(Kind.INT, 2, "K", "local optimizer steps per slot per round; default 2"),
    // The chart's top-level `slots` also sizes the executors (one slot per executor), so it is not under train:.
    SLOTS(Kind.INT, r -> 2, "N", "parallel slots (Spark tasks, one per GPU); default 2", Helm.TOP_LEVEL, true),
    BATCH_SIZE(Kind.INT, 32, "N", "sequences per optimizer step (per slot), padding allowed; default 32"),
    GROUP_BY_LENGTH(Kind.OFF_OR_INT, "off", "off|M", "length grouping: off (each step is N random sequences) or a mega-batch of M records sorted by length, M > N; default off (docs/DATA.md says why)"),
    MICRO_BATCH_TOKENS(Kind.INT, 512, "T", "token budget of a micro-batch, padding included: a step is split into as many as it needs (memory only); default 512"),
    // Where the run executes: spark-submit, the operator or the notebook's session decides it everywhere but the CLI.
    MASTER(Kind.STRING, r -> "local[*]", "URL", "Spark master when not set by spark-submit; default local[*]", Helm.NONE, false),
    SEED(Kind.LONG, 42L, "S", "the seed every random choice derives from; default 42"),
    METHOD(Kind.CHOICE, "qalora", List.of("qalora", "lora"), "qalora (QA-LoRA on a group-quantized base, merged into its zero points) or lora (the baseline: plain LoRA on the float model, merged into float32 weights; quantize it afterwards with qalora quantize); default qalora"),
    BITS(Kind.INT, 4, "2|3|4|8", "quantization bits when the model must be quantized; default 4"),
    GROUP_SIZE(Kind.INT, 32, "G", "quantization group size = adapter pooling group; must divide the model's hidden and intermediate sizes (the demo model: 64 and 128); default 32"),
    RANK(Kind.INT, 8, "R", "LoRA rank; default 8"),
    ALPHA(Kind.DOUBLE, 16.0, "A", "lora_alpha; default 16"),
    LR(Kind.DOUBLE, null, "LR", "peak learning rate; default: the worker's for the pooling (mean 1e-3, sum 2e-4)"),
    LR_SCHEDULE(Kind.CHOICE, "constant", List.of("constant", "linear", "cosine"), "learning-rate decay over the run's steps (HF's schedules); with linear or cosine the number of rounds is part of the run, so a finished run cannot be extended; default constant"),
    WARMUP_STEPS(Kind.INT, 0, "N", "linear warmup of the learning rate from 0 over the first N optimizer steps; default 0"),
    POOLING(Kind.CHOICE, "mean", List.of("mean", "sum", "peft"), "mean (official QA-LoRA code), sum (paper) or peft; default mean"),
    DROPOUT(Kind.DOUBLE, 0.05, "P", "dropout on the pooled adapter input; default 0.05"),
    TEMPLATE(Kind.STRING, "auto", "FILE", "prompt template file for raw data; default auto (Alpaca prompts, FLAN verbatim)"),
    SKIP_BAD_RECORDS(Kind.BOOLEAN, false, (String) null, "raw data: skip and count bad records instead of stopping at the first one; default off"),
    SOURCE_MAX_LEN(Kind.INT, ExampleEncoder.Settings.QALORA.sourceMaxLen(), "N", "raw data: prompt tokens kept per record (BOS included; longer prompts are truncated at the end, as HF does); default 1024"),
    TARGET_MAX_LEN(Kind.INT, ExampleEncoder.Settings.QALORA.targetMaxLen(), "N", "raw data: response tokens kept per record (EOS included; longer responses are truncated); default 256"),
    KEEP_ROUNDS(Kind.INT, 2, "N", "committed rounds kept; default 2"),
    AVERAGING_PARTS(Kind.INT, 0, "N", "key ranges of a round's averaging (Spark tasks, part files of the committed state); the result is the same bits for any N, so a resumed run may change it; default 0 = one per 64 MiB of adapter state (weights and Adam moments), at least one per slot"),
    AVERAGING_TASK_CPUS(Kind.INT, 1, "N", "CPUs each averaging task asks for, through a Spark task resource profile (no GPU), so an executor whose training task takes all its cores (spark.task.cpus) averages several key ranges at once; used on standalone, YARN and Kubernetes with dynamic allocation off, else the averaging tasks take what training tasks take; changes no bit of the result; 0 = as training tasks; default 1"),
    UPDATE_REPLICATION(Kind.INT, 2, "N", "HDFS copies of each slot's update file, a transient file that the round's averaging reads once and the next commit deletes (never more than the file system's default; the committed checkpoint keeps the default); changes no bit of the result; 0 = the file system's default; default 2"),
    DEVICE(Kind.STRING, "auto", "auto|cpu|gpu|gpu:N", "auto (the task's Spark GPU when it has one, else the CPU), cpu, gpu (the task's GPU, or GPU 0) or gpu:N; default auto"),
    PRECISION(Kind.CHOICE, "auto", List.of("auto", "fp32", "bf16"), "auto (bf16 on a GPU, fp32 on the CPU), fp32 (exact) or bf16 (GPU only); default auto"),
    RECOMPUTE(Kind.BOOLEAN, false, (String) null, "per-layer activation recompute: keep each layer's input and recompute its activations in backward (less memory, more compute); default off"),
    MAX_SHARD_SIZE(Kind.STRING, ShardSize.DEFAULT, "SIZE", "largest weights file of the quantized base and the merged model (one Spark task each), as HF spells it (5GB, 500MB, 2GiB); more is written as model-0000k-of-0000n.safetensors + model.safetensors.index.json; default 5GB"),
    WARM_START(Kind.STRING, null, "LATEST|PATH", "continue a published adapter (and its Adam moments and step) on new data: LATEST = the version --output's LATEST names (a fresh adapter while there is none), or PATH = a published version, its adapter/ directory, a run directory, or a PEFT adapter directory without optimizer state (its A and B, fresh Adam moments, step 0); the base, method, bits, group size, rank and pooling must match it; the learning-rate schedule restarts; default: none (a fresh adapter)"),
    KEEP_VERSIONS(Kind.INT, 0, "N", "after LATEST flipped to the new version, delete all but the N newest published versions of --output (never the one LATEST names); default 0 = keep all"),
    QUANTIZE(Kind.CHOICE, "gptq", List.of("gptq", "rtn"), "how QA-LoRA quantizes a float --model: gptq (the paper's; calibrated on --calibration-samples windows of --calibration-tokens tokens, as distributed Spark tasks) or rtn (round to nearest, no data); a GPTQ checkpoint is used as is; default gptq"),
    CALIBRATION(Kind.STRING, null, "FILE", "gptq: a UTF-8 text file to draw the calibration windows from (tokenized with the model's tokenizer); default: the training data (records in a seeded order)"),
    // The paper's 128 x 2048; what the source holds caps both (the demo's sample: one window of 2048 tokens).
    CALIBRATION_SAMPLES(Kind.INT, 128, "N", "gptq: calibration sequences; capped by the non-overlapping windows the source holds (the bundled demo sample holds one); default 128"),
    CALIBRATION_TOKENS(Kind.INT, 2048, "T", "gptq: tokens per calibration sequence; capped by the tokens the source holds (fewer than 64 in all is an error); default 2048"),
    // Decided once by the driver: every solve task must use the same kind of device (the two differ in the last bits).
    GPTQ_SOLVE(Kind.CHOICE, "auto", List.of("auto", "cpu", "gpu"), "gptq: where each projection's inverse-Hessian solve (float64) and column-by-column quantization run: cpu (blocked, the task's cores), gpu (cuSOLVER and the GPTQ column kernels on the task's GPU) or auto, decided once for the whole run: cpu with --device cpu, else gpu when the Spark tasks are given GPUs or --device names one (in local mode: when this machine has a usable GPU), else cpu; the factors agree within 1e-9 (relative), not bit for bit, the column stages bit for bit (one 7B layer: 2.6x faster on an H100 than on 16 CPU cores); default auto");

    /** How a setting's value is written and read. */
    public enum Kind {
        /** One string (a path, a URL, a size). */
        STRING(String.class),
        /** One or more strings: a flag given once with several values or repeated, a YAML list. */
        STRINGS(List.class),
        INT(Integer.class),
        LONG(Long.class),
        DOUBLE(Double.class),
        /** A negatable flag ({@code --recompute}, {@code --no-recompute}); true or false elsewhere. */
        BOOLEAN(Boolean.class),
        /** One of a fixed set of words ({@link #choices()}); TrainJob normalises the case and refuses the rest. */
        CHOICE(String.class),
        /** {@code off} or a whole number. */
        OFF_OR_INT(String.class);

        private final Class<?> cliType;

        Kind(Class<?> cliType) { this.cliType = cliType; }

        /** The Java type the command line parses the flag's text into. */
        public Class<?> cliType() { return cliType; }
    }

    /** Where the Helm chart takes the setting from. */
    public enum Helm {
        /** {@code .Values.train.<camelCase>}, rendered into the flag by the chart's generic loop. */
        TRAIN,
        /** {@code .Values.<camelCase>} at the top of values.yaml (it sizes more than the train command). */
        TOP_LEVEL,
        /** Not in the chart. */
        NONE
    }

    private final Kind kind;
    private final Function<String, Object> defaultFor;
    private final List<String> choices;
    private final String paramLabel;
    private final String help;
    private final Helm helm;
    private final boolean session;
    private final boolean optional;

    TrainSetting(Kind kind, Object defaultValue, String paramLabel, String help) {
        this(kind, root -> defaultValue, paramLabel, help, Helm.TRAIN, true);
    }

    TrainSetting(Kind kind, Object defaultValue, List<String> choices, String help) {
        this(kind, root -> defaultValue, choices, String.join("|", choices), help, Helm.TRAIN, true);
    }

    TrainSetting(Kind kind, Function<String, Object> defaultFor, String paramLabel, String help, Helm helm,
                 boolean session) {
        this(kind, defaultFor, List.of(), paramLabel, help, helm, session);
    }

    TrainSetting(Kind kind, Function<String, Object> defaultFor, List<String> choices, String paramLabel, String help,
                 Helm helm, boolean session) {
        this.kind = kind;
        this.defaultFor = defaultFor;
        this.choices = choices;
        this.paramLabel = paramLabel;
        this.help = help;
        this.helm = helm;
        this.session = session;
        this.optional = defaultFor.apply("") == null;
    }

    /** The flag without dashes, which is also the YAML key: {@code steps-per-round}. */
    public String flag() { return name().toLowerCase(Locale.ROOT).replace('_', '-'); }

    /** The command-line option: {@code --steps-per-round}. */
    public String option() { return "--" + flag(); }

    /** The {@link TrainJob} component and the Helm value name: {@code stepsPerRound}. */
    public String camelCase() {
        String[] words = flag().split("-");
        StringBuilder sb = new StringBuilder(words[0]);
        for (int i = 1; i < words.length; i++) {
            sb.append(Character.toUpperCase(words[i].charAt(0))).append(words[i].substring(1));
        }
        return sb.toString();
    }

    public Kind kind() { return kind; }

    /** The words a {@link Kind#CHOICE} accepts; empty for the other kinds. */
    public List<String> choices() { return choices; }

    /** The default; {@code repoRoot} locates the bundled sample data (the demo run's). Null: "not set". */
    public Object defaultValue(String repoRoot) { return defaultFor.apply(repoRoot); }

    /** The option's parameter label in {@code --help} ({@code N}, {@code off|M}); null for a boolean flag. */
    public String paramLabel() { return paramLabel; }

    /** The option's description in {@code --help}. */
    public String help() { return help; }

    /** The Helm value ({@code train.stepsPerRound}, {@code slots}), or empty when the chart does not set it. */
    public Optional<String> helmValue() {
        return switch (helm) {
            case TRAIN -> Optional.of("train." + camelCase());
            case TOP_LEVEL -> Optional.of(camelCase());
            case NONE -> Optional.empty();
        };
    }

    /**
     * True when the notebook builder ({@code QaloraTraining.set}) and {@code CALL qalora.system.train} take it: all but
     * {@code master}, since there the caller's SparkSession already decides where the run executes.
     */
    public boolean onSession() { return session; }

    /** The setting whose flag (YAML key) is {@code flag}, if any. */
    public static Optional<TrainSetting> byFlag(String flag) {
        return Arrays.stream(values()).filter(s -> s.flag().equals(flag)).findFirst();
    }

    /**
     * The value in merged layers, converted to this setting's type (String, List of String, Integer, Long, Double,
     * Boolean; {@code off|M} as the Integer 0 or M). Null stays null where the default is null; a value of the wrong
     * type is an error that names the key and {@code source} (the job file, or "flags").
     */
    public Object read(Map<String, Object> m, String source) {
        Object v = m.get(flag());
        if (v == null && optional) {
            return null;
        }
        return convert(kind, v, source + ": '" + flag() + "'");
    }

    /**
     * {@code v} converted to a value of {@code kind} (as {@link #read} does); {@code what} names it in errors
     * ({@code "job.yaml: 'rounds'"}, {@code "CALL qalora.system.train: rounds"}).
     */
    public static Object convert(Kind kind, Object v, String what) {
        return switch (kind) {
            case STRING, CHOICE -> single(v, what);
            case STRINGS -> strings(v);
            case INT -> integer(v, what);
            case LONG -> number(v, what).longValue();
            case DOUBLE -> number(v, what).doubleValue();
            case BOOLEAN -> bool(v, what);
            case OFF_OR_INT -> megaBatch(v, what);
        };
    }

    private static String single(Object v, String what) {
        if (v == null) {
            return null;
        }
        if (v instanceof Map || v instanceof List) {
            throw new IllegalArgumentException(what + " must be a single value, got " + v);
        }
        return String.valueOf(v);
    }

    static List<String> strings(Object v) {
        if (v == null) {
            return List.of();
        }
        if (v instanceof List<?> list) {
            return list.stream().map(String::valueOf).toList();
        }
        return List.of(String.valueOf(v));
    }

    private static Number number(Object v, String what) {
        if (v instanceof Number n) {
            return n;
        }
        try {
            return Double.parseDouble(String.valueOf(v));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(what + " must be a number, got '" + v + "'");
        }
    }

    private static boolean bool(Object v, String what) {
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
        throw new IllegalArgumentException(what + " must be true or false, got '" + v + "'");
    }

    /**
     * {@code off} (YAML 1.1 also reads a bare {@code off} or {@code false} as the boolean false) is 0; otherwise a
     * whole number, the mega-batch size.
     */
    private static int megaBatch(Object v, String what) {
        if (v == null || Boolean.FALSE.equals(v) || String.valueOf(v).trim().equalsIgnoreCase("off")) {
            return 0;
        }
        if (v instanceof Boolean) {
            throw new IllegalArgumentException(what + " must be off or a mega-batch size (records), got " + v);
        }
        try {
            return integer(v, what);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + " must be off or a mega-batch size (records), got '" + v + "'");
        }
    }

    private static int integer(Object v, String what) {
        Number n = number(v, what);
        if (n.doubleValue() != Math.rint(n.doubleValue()) || Math.abs(n.doubleValue()) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(what + " must be a whole number, got " + n);
        }
        return n.intValue();
    }
}
