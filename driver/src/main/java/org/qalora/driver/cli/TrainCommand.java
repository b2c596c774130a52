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
 * is the demo run. The same class is the spark-submit entry point (through {@link QaloraCli}).
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
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
    @Option(names = "--model", paramLabel = "DIR", description = "HF or GPTQ checkpoint (any Hadoop path); default: the generated demo model")
    String model;
    @Option(names = "--data", paramLabel = "PATH", arity = "1..*", description = "raw records (JSON, JSONL, Parquet; Alpaca or FLAN) or one prepared dataset directory; default: samples/alpaca-sample.json")
    List<String> data;
    @Option(names = "--eval-data", paramLabel = "PATH", arity = "1..*", description = "held-out records (same forms as --data): the loss of each evaluated round's averaged adapter over all their target tokens goes to metrics.jsonl and the progress line; default none")
    List<String> evalData;
    @Option(names = "--eval-every", paramLabel = "K", description = "with --eval-data: the held-out loss after every K-th round and after the last; default 1")
    Integer evalEvery;
    @Option(names = "--tokenizer", paramLabel = "FILE", description = "tokenizer.json; default: the model's")
    String tokenizer;
    @Option(names = "--output", paramLabel = "DIR", description = "run directory (checkpoints, published models); default: qalora-output")
    String output;
    @Option(names = "--rounds", paramLabel = "N", description = "training rounds; default 3")
    Integer rounds;
    @Option(names = "--steps-per-round", paramLabel = "K", description = "local optimizer steps per slot per round; default 2")
    Integer stepsPerRound;
    @Option(names = "--slots", paramLabel = "N", description = "parallel slots (Spark tasks, one per GPU); default 2")
    Integer slots;
    @Option(names = "--batch-size", paramLabel = "N", description = "sequences per optimizer step (per slot), padding allowed; default 32")
    Integer batchSize;
    @Option(names = "--group-by-length", paramLabel = "off|M", description = "length grouping: off (each step is N random sequences) or a mega-batch of M records sorted by length, M > N; default off (docs/DATA.md says why)")
    String groupByLength;
    @Option(names = "--micro-batch-tokens", paramLabel = "T", description = "token budget of a micro-batch, padding included: a step is split into as many as it needs (memory only); default 512")
    Integer microBatchTokens;
    @Option(names = "--master", paramLabel = "URL", description = "Spark master when not set by spark-submit; default local[*]")
    String master;
    @Option(names = "--seed", paramLabel = "S", description = "the seed every random choice derives from; default 42")
    Long seed;
    @Option(names = "--method", paramLabel = "qalora|lora", description = "qalora (QA-LoRA on a group-quantized base, merged into its zero points) or lora (the baseline: plain LoRA on the float model, merged into float32 weights; quantize it afterwards with qalora quantize); default qalora")
    String method;
    @Option(names = "--bits", paramLabel = "2|3|4|8", description = "quantization bits when the model must be quantized; default 4")
    Integer bits;
    @Option(names = "--group-size", paramLabel = "G", description = "quantization group size = adapter pooling group; must divide the model's hidden and intermediate sizes (the demo model: 64 and 128); default 32")
    Integer groupSize;
    @Option(names = "--rank", paramLabel = "R", description = "LoRA rank; default 8")
    Integer rank;
    @Option(names = "--alpha", paramLabel = "A", description = "lora_alpha; default 16")
    Double alpha;
    @Option(names = "--lr", paramLabel = "LR", description = "peak learning rate; default: the worker's for the pooling (mean 1e-3, sum 2e-4)")
    Double lr;
    @Option(names = "--lr-schedule", paramLabel = "constant|linear|cosine", description = "learning-rate decay over the run's steps (HF's schedules); with linear or cosine the number of rounds is part of the run, so a finished run cannot be extended; default constant")
    String lrSchedule;
    @Option(names = "--warmup-steps", paramLabel = "N", description = "linear warmup of the learning rate from 0 over the first N optimizer steps; default 0")
    Integer warmupSteps;
    @Option(names = "--pooling", paramLabel = "mean|sum|peft", description = "mean (official QA-LoRA code), sum (paper) or peft; default mean")
    String pooling;
    @Option(names = "--dropout", paramLabel = "P", description = "dropout on the pooled adapter input; default 0.05")
    Double dropout;
    @Option(names = "--template", paramLabel = "FILE", description = "prompt template file for raw data; default auto (Alpaca prompts, FLAN verbatim)")
    String template;
    @Option(names = "--skip-bad-records", negatable = true, description = "raw data: skip and count bad records instead of stopping at the first one; default off")
    Boolean skipBadRecords;
    @Option(names = "--source-max-len", paramLabel = "N", description = "raw data: prompt tokens kept per record (BOS included; longer prompts are truncated at the end, as HF does); default 1024")
    Integer sourceMaxLen;
    @Option(names = "--target-max-len", paramLabel = "N", description = "raw data: response tokens kept per record (EOS included; longer responses are truncated); default 256")
    Integer targetMaxLen;
    @Option(names = "--keep-rounds", paramLabel = "N", description = "committed rounds kept; default 2")
    Integer keepRounds;
    @Option(names = "--device", paramLabel = "auto|cpu|gpu|gpu:N", description = "auto (the task's Spark GPU when it has one, else the CPU), cpu, gpu (the task's GPU, or GPU 0) or gpu:N; default auto")
    String device;
    @Option(names = "--precision", paramLabel = "auto|fp32|bf16", description = "auto (bf16 on a GPU, fp32 on the CPU), fp32 (exact) or bf16 (GPU only); default auto")
    String precision;
    @Option(names = "--recompute", negatable = true, description = "per-layer activation recompute: keep each layer's input and recompute its activations in backward (less memory, more compute); default off")
    Boolean recompute;
    @Option(names = "--force", description = "use an --output directory that holds other files, or restart there a run that "
            + "failed before its first committed round with new settings (its derived files are replaced); "
            + "never discards a run with committed rounds")
    boolean force;
    @Option(names = "--max-shard-size", paramLabel = "SIZE", description = "largest weights file of the quantized base and the merged model (one Spark task each), as HF spells it (5GB, 500MB, 2GiB); more is written as model-0000k-of-0000n.safetensors + model.safetensors.index.json; default 5GB")
    String maxShardSize;
    @Option(names = "--quantize", paramLabel = "gptq|rtn", description = "how QA-LoRA quantizes a float --model: gptq (the paper's; calibrated on --calibration-samples windows of --calibration-tokens tokens, as distributed Spark tasks) or rtn (round to nearest, no data); a GPTQ checkpoint is used as is; default gptq")
    String quantize;
    @Option(names = "--calibration", paramLabel = "FILE", description = "gptq: a UTF-8 text file to draw the calibration windows from (tokenized with the model's tokenizer); default: the training data (records in a seeded order)")
    String calibration;
    @Option(names = "--calibration-samples", paramLabel = "N", description = "gptq: calibration sequences; capped by the non-overlapping windows the source holds (the bundled demo sample holds one); default 128")
    Integer calibrationSamples;
    @Option(names = "--calibration-tokens", paramLabel = "T", description = "gptq: tokens per calibration sequence; capped by the tokens the source holds (fewer than 64 in all is an error); default 2048")
    Integer calibrationTokens;
    @Option(names = "--conf", paramLabel = "KEY=VALUE", description = "extra Spark setting (repeatable)")
    Map<String, String> conf = new LinkedHashMap<>();

    @Override
    public Integer call() {
        Path root = repoRoot();
        Map<String, Object> flags = new LinkedHashMap<>();
        flags.put("model", model);
        flags.put("data", data);
        flags.put("eval-data", evalData);
        flags.put("eval-every", evalEvery);
        flags.put("tokenizer", tokenizer);
        flags.put("output", output);
        flags.put("rounds", rounds);
        flags.put("steps-per-round", stepsPerRound);
        flags.put("slots", slots);
        flags.put("batch-size", batchSize);
        flags.put("group-by-length", groupByLength);
        flags.put("micro-batch-tokens", microBatchTokens);
        flags.put("master", master);
        flags.put("seed", seed);
        flags.put("method", method);
        flags.put("bits", bits);
        flags.put("group-size", groupSize);
        flags.put("rank", rank);
        flags.put("alpha", alpha);
        flags.put("lr", lr);
        flags.put("pooling", pooling);
        flags.put("dropout", dropout);
        flags.put("template", template);
        flags.put("keep-rounds", keepRounds);
        flags.put("device", device);
        flags.put("precision", precision);
        flags.put("recompute", recompute);
        flags.put("lr-schedule", lrSchedule);
        flags.put("warmup-steps", warmupSteps);
        flags.put("skip-bad-records", skipBadRecords);
        flags.put("source-max-len", sourceMaxLen);
        flags.put("target-max-len", targetMaxLen);
        flags.put("max-shard-size", maxShardSize);
        flags.put("quantize", quantize);
        flags.put("calibration", calibration);
        flags.put("calibration-samples", calibrationSamples);
        flags.put("calibration-tokens", calibrationTokens);
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
