package org.qalora.driver.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.spark.SparkConf;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.pipeline.TrainPipeline;
import org.qalora.driver.pipeline.TrainPreflight;
import org.qalora.quant.io.HadoopPaths;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code qalora train}: quantize (if needed), prepare (if needed), training rounds on Spark, merge, publish.
 * Settings come from the embedded defaults, then {@code --job FILE} (YAML), then the flags; with no arguments it
 * is the demo run. The same class is the spark-submit entry point (through {@link QaloraCli}). The setting flags
 * are not written here: {@link TrainOptions} adds one per {@link org.qalora.driver.config.TrainSetting}.
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false, modelTransformer = TrainOptions.class,
        description = {"Fine-tune a quantized LLaMA with QA-LoRA on Spark: quantize (when the model is not yet "
                + "quantized), prepare (when the data is raw), training rounds, merge, publish. With --method lora: "
                + "the plain LoRA baseline on the float model, published as a float32 model.",
                "With no arguments: the demo run on embedded defaults (Spark local mode, local files, the bundled "
                + "sample data and a generated tiny random-weight LLaMA that is NOT a trained model)."})
public final class TrainCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--job", paramLabel = "FILE", description = "YAML job file; keys are the flag names (steps-per-round: 8)")
    Path job;
    @Option(names = "--force", description = "use an --output directory that holds other files, or restart there a run that "
            + "failed before its first committed round with new settings (its derived files are replaced); "
            + "never discards a run with committed rounds")
    boolean force;
    @Option(names = "--conf", paramLabel = "KEY=VALUE", description = "extra Spark setting (repeatable)")
    Map<String, String> conf = new LinkedHashMap<>();

    @Override
    public Integer call() {
        Path root = repoRoot();
        Map<String, Object> flags = TrainOptions.given(spec);
        TrainJob settings;
        Map<String, Object> merged = null;
        try {
            Map<String, Object> fromFile = job == null ? Map.of()
                    : TrainJobLoader.parseYaml(TrainJobLoader.readText(job), job.toString());
            merged = TrainJobLoader.merge(TrainJobLoader.defaults(root.toString()), fromFile, flags);
            settings = TrainJobLoader.build(job == null ? TrainJobLoader.FLAGS : job.toString(), merged);
        } catch (InvalidSettingsException e) {
            // Report the missing files too, so that one refusal lists everything (the full checks need a valid job).
            List<String> all = new ArrayList<>(e.problems());
            all.addAll(TrainPreflight.missingInputs(merged, HadoopPaths.defaults()));
            throw all.size() == e.problems().size() ? e : new InvalidSettingsException("bad train settings", all);
        } catch (IllegalArgumentException e) {   // an unreadable job file, a key of the wrong type: usage errors too
            throw new InvalidSettingsException("bad train settings", List.of(e.getMessage()));
        }
        SparkConf sparkConf = new SparkConf();
        conf.forEach(sparkConf::set);
        var out = spec.commandLine().getOut();
        new TrainPipeline(root, line -> {
            out.println("qalora: " + line);
            out.flush();
        }, force).run(settings, sparkConf);
        return 0;
    }

    /** The repository checkout (bundled samples and tokenizer): bin/qalora passes it as -Dqalora.root. */
    public static Path repoRoot() {
        String configured = System.getProperty("qalora.root");
        if (configured != null && Files.isDirectory(Path.of(configured))) {
            return Path.of(configured).toAbsolutePath();
        }
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isDirectory(dir.resolve("samples/tokenizer"))) {
                return dir;
            }
        }
        return Path.of("").toAbsolutePath();
    }
}
