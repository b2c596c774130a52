package org.qalora.driver.api;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;
import org.apache.spark.sql.SparkSession;
import org.qalora.driver.cli.TrainCommand;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.config.TrainSetting;
import org.qalora.driver.pipeline.TrainPipeline;

/**
 * {@code qalora train} on a SparkSession that already runs, as a notebook drives it (Java, Scala, Kotlin):
 * <pre>{@code
 * TrainingResult r = QaloraTraining.on(spark).model("hdfs:///models/llama-7b-gptq").data("hdfs:///data/alpaca.json")
 *         .output("hdfs:///runs/alpaca").rounds(20).set("lr", 2e-3).fit();
 * r.metrics().show();
 * }</pre>
 * Every setting is a {@code train} flag: the named methods are the common ones, {@link #set} takes any other by its
 * flag name without dashes (the YAML job keys), and what is not set keeps the command's default. The session is
 * never stopped and its settings are left as they were; the run's output behaves as with the command (a rerun
 * resumes, a larger {@code rounds} extends). {@link #fitAsync} runs in the background under a Spark job group that
 * {@link TrainingRun#cancel} cancels.
 */
public final class QaloraTraining {
    private final SparkSession spark;
    private final Map<String, Object> settings = new LinkedHashMap<>();
    private Consumer<String> progress = line -> { };
    private boolean force;

    private QaloraTraining(SparkSession spark) {
        this.spark = Objects.requireNonNull(spark, "spark");
    }

    /** A training on {@code spark} (the session's master decides where the slots run). */
    public static QaloraTraining on(SparkSession spark) {
        return new QaloraTraining(spark);
    }

    public QaloraTraining model(String dir) { return set(TrainSetting.MODEL, dir); }

    public QaloraTraining data(String... paths) { return set(TrainSetting.DATA, Arrays.asList(paths)); }

    public QaloraTraining evalData(String... paths) { return set(TrainSetting.EVAL_DATA, Arrays.asList(paths)); }

    public QaloraTraining output(String dir) { return set(TrainSetting.OUTPUT, dir); }

    public QaloraTraining rounds(int rounds) { return set(TrainSetting.ROUNDS, rounds); }

    public QaloraTraining stepsPerRound(int steps) { return set(TrainSetting.STEPS_PER_ROUND, steps); }

    public QaloraTraining slots(int slots) { return set(TrainSetting.SLOTS, slots); }

    public QaloraTraining bits(int bits) { return set(TrainSetting.BITS, bits); }

    public QaloraTraining groupSize(int groupSize) { return set(TrainSetting.GROUP_SIZE, groupSize); }

    public QaloraTraining rank(int rank) { return set(TrainSetting.RANK, rank); }

    public QaloraTraining alpha(double alpha) { return set(TrainSetting.ALPHA, alpha); }

    public QaloraTraining lr(double lr) { return set(TrainSetting.LR, lr); }

    public QaloraTraining device(String device) { return set(TrainSetting.DEVICE, device); }

    /**
     * Any {@code train} setting by its flag name without the dashes ({@code "batch-size"}, {@code "pooling"}); a
     * name {@code train} does not have, or a value of the wrong type, is refused here, naming the settings there are.
     */
    public QaloraTraining set(String flag, Object value) {
        TrainSetting setting = TrainSetting.byFlag(flag).filter(TrainSetting::onSession)
                .orElseThrow(() -> new InvalidSettingsException("bad train settings", List.of("'" + flag + "' is not"
                        + " a setting of QaloraTraining (the session's master decides where it runs); the settings are "
                        + sessionSettings())));
        return set(setting, value);
    }

    /** A setting of the declaration; its value is checked against the setting's type at once. */
    public QaloraTraining set(TrainSetting setting, Object value) {
        if (!setting.onSession()) {
            throw new InvalidSettingsException("bad train settings", List.of("'" + setting.flag() + "' is not a"
                    + " setting of QaloraTraining (the session's master decides where it runs)"));
        }
        setting.read(java.util.Collections.singletonMap(setting.flag(), value), "QaloraTraining");   // a wrong type fails here, not at fit()
        settings.put(setting.flag(), value);
        return this;
    }

    /** The flag names {@link #set} takes. */
    public static List<String> sessionSettings() {
        return Arrays.stream(TrainSetting.values()).filter(TrainSetting::onSession).map(TrainSetting::flag).sorted()
                .toList();
    }

    /** Where the progress lines go (round by round, as {@code qalora train} prints them); default nowhere. */
    public QaloraTraining progress(Consumer<String> lines) {
        this.progress = Objects.requireNonNull(lines, "progress");
        return this;
    }

    /** {@code --force}: use an output directory that holds other files, or restart one that never committed. */
    public QaloraTraining force(boolean force) {
        this.force = force;
        return this;
    }

    /** Validates everything (all problems in one {@link InvalidSettingsException}), trains, merges and publishes. */
    public TrainingResult fit() {
        return run(progress);
    }

    /**
     * {@link #fit} on a background thread, under a Spark job group of its own: {@link TrainingRun#cancel} cancels
     * its running tasks and stops it at the next round; the committed rounds stay, so a later fit resumes.
     */
    public TrainingRun fitAsync() {
        return TrainingRun.start(spark, this::run, progress);
    }

    TrainingResult run(Consumer<String> lines) {
        Path root = TrainCommand.repoRoot();
        TrainJob job = TrainJobLoader.build("QaloraTraining", TrainJobLoader.defaults(root.toString()), settings);
        TrainPipeline.Outcome outcome = new TrainPipeline(root, lines, force).run(job, spark);
        return TrainingResult.of(spark, outcome);
    }
}
