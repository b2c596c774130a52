package org.qalora.driver.pipeline;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.qalora.driver.gptq.CalibrationSampler;
import org.qalora.driver.gptq.GptqJob;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.quantizer.GptqSolve;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.quantize.CalibrationWork;
import org.qalora.worker.quantize.QuantizeLayout;

/**
 * The model stages before training: generate the demo model when no {@code --model} was given, check that the
 * tokenizer's ids fit the model's vocabulary ({@link #source}), then quantize the base when it is not a GPTQ
 * checkpoint yet (QA-LoRA; RTN, or GPTQ calibrated on the training data or a given text) or refuse a GPTQ
 * checkpoint (plain LoRA trains the float model) ({@link #quantize}). Each output is written atomically and reused
 * by a rerun. The driver reads config.json, safetensors headers, the tokenizer and token ids only: quantization runs
 * as Spark tasks (RTN: one per output shard, {@link QuantizeLayout} through a {@link ShardJob}; GPTQ: calibration
 * and solve tasks per layer and stage, {@link GptqJob}), and the directory is renamed into place when all of them
 * are done.
 */
public final class ModelStage {

    /**
     * The base model to train on (quantized for QA-LoRA, the float model for plain LoRA) and the tokenizer to
     * prepare data with.
     */
    public record Resolved(String baseModel, LlamaConfig config, String tokenizer) {}

    private final HadoopPaths paths;
    private final ShardJob shards;
    private final long maxShardBytes;
    private final FaultPlan faults;
    private final Consumer<String> progress;
    private GptqJob.Stats lastGptqStats;

    /** The calibration work directory under the run directory, present only while GPTQ runs. */
    public static final String GPTQ_WORK_DIR = "gptq-calibration";

    /**
     * @param shards        runs the quantization tasks
     * @param maxShardBytes the largest weights file of the quantized base ({@code --max-shard-size})
     */
    public ModelStage(HadoopPaths paths, ShardJob shards, long maxShardBytes, Consumer<String> progress) {
        this(paths, shards, maxShardBytes, FaultPlan.none(), progress);
    }

    /** @param faults test fault injection for the GPTQ calibration tasks ({@code calibrationhalt}) */
    public ModelStage(HadoopPaths paths, ShardJob shards, long maxShardBytes, FaultPlan faults,
                      Consumer<String> progress) {
        this.paths = paths;
        this.shards = shards;
        this.maxShardBytes = maxShardBytes;
        this.faults = faults;
        this.progress = progress;
    }

    /** The model given (or the demo model) before quantization, and the tokenizer to prepare data with. */
    public record Source(String model, LlamaConfig config, String tokenizer) {}

    /**
     * How a float base is quantized for QA-LoRA ({@code --quantize}, {@code --calibration*}).
     *
     * @param gptq              GPTQ with calibration (else RTN)
     * @param calibrationFile   a UTF-8 text file to draw calibration windows from, or null for the training data
     * @param samples           calibration sequences wanted ({@code --calibration-samples})
     * @param tokens            tokens per sequence wanted ({@code --calibration-tokens})
     * @param solve             where every solve task computes its inverse-Hessian factor ({@code --gptq-solve},
     *                          already resolved: the same for all tasks)
     */
    public record Quantization(boolean gptq, String calibrationFile, int samples, int tokens, GptqSolve solve) {
        public static final Quantization RTN = new Quantization(false, null, 0, 0, GptqSolve.CPU);

        /** GPTQ with the inverse-Hessian solves on the CPU. */
        public Quantization(boolean gptq, String calibrationFile, int samples, int tokens) {
            this(gptq, calibrationFile, samples, tokens, GptqSolve.CPU);
        }
    }

    /** {@link #source} then {@link #quantize} with RTN (callers without training data to calibrate on). */
    public Resolved resolve(String model, String tokenizer, boolean quantize, int bits, int groupSize, long seed,
                            String runDir, Path repoRoot) throws IOException {
        Source source = source(model, tokenizer, quantize, seed, runDir, repoRoot);
        return quantize(source, quantize, bits, groupSize, Quantization.RTN, seed, runDir, null);
    }

    /**
     * The demo model when no model was given; checks that the model exists, suits the method, and that the
     * tokenizer's ids fit its vocabulary.
     *
     * @param model      the given model, or null for the demo model
     * @param tokenizer  the given tokenizer.json, or null for the model's own
     * @param quantize   QA-LoRA (a float or GPTQ model); false (plain LoRA): refuse a quantized one
     * @param runDir     the run's output directory (demo-model/ goes there)
     * @param repoRoot   the repository checkout (for the bundled tokenizer of the demo model)
     */
    public Source source(String model, String tokenizer, boolean quantize, long seed, String runDir, Path repoRoot)
            throws IOException {
        String source = model;
        if (source == null) {
            source = HadoopPaths.child(runDir, "demo-model");
            if (!paths.exists(HadoopPaths.child(source, LlamaConfig.CONFIG_FILE))) {
                progress.accept("generating the demo model (random weights, NOT a trained model) in " + source);
            }
            DemoModel.ensure(source, seed, repoRoot.resolve("samples/tokenizer"), paths);
        }
        if (!paths.exists(source)) {
            throw new IllegalArgumentException("--model " + source + " does not exist (or is not readable)");
        }
        LlamaConfig config = LlamaConfig.read(source, paths);
        if (!quantize && config.isQuantized()) {
            throw new IllegalArgumentException("--method lora trains plain LoRA on a float model, but --model "
                    + source + " is a " + config.quantization().bits() + "-bit GPTQ checkpoint: pass the float (HF)"
                    + " checkpoint, or use --method qalora to train on the quantized one");
        }
        String tok = tokenizer != null ? tokenizer : HadoopPaths.child(source, "tokenizer.json");
        if (!paths.exists(tok)) {
            throw new IllegalArgumentException("no tokenizer: " + tok + " does not exist; pass --tokenizer FILE");
        }
        TokenizerVocabulary.checkFits(paths.readAllBytes(tok), tok, config.vocabSize(), source);
        return new Source(source, config, tok);
    }

    /**
     * The base to train on: the float model itself for plain LoRA; for QA-LoRA a GPTQ model as given, or the float
     * model quantized ({@code bits}, {@code groupSize}) by RTN or GPTQ into {@code base-quantized/}.
     *
     * @param trainingData the prepared training data (GPTQ's calibration is drawn from it unless
     *                     {@code how.calibrationFile()} is given); unused by RTN
     */
    public Resolved quantize(Source src, boolean quantize, int bits, int groupSize, Quantization how, long seed,
                             String runDir, String trainingData) throws IOException {
        String source = src.model();
        LlamaConfig config = src.config();
        if (!quantize) {
            return new Resolved(source, config, src.tokenizer());
        }
        String quantized = source;
        if (!config.isQuantized()) {
            quantized = HadoopPaths.child(runDir, "base-quantized");
            if (paths.exists(HadoopPaths.child(quantized, LlamaConfig.CONFIG_FILE))) {
                progress.accept("quantize: reusing " + quantized);
            } else {
                GptqConfig gptq = GptqConfig.of(bits, groupSize);
                QuantizeLayout plan;
                try (Checkpoint checkpoint = Checkpoint.open(source, paths)) { // headers only
                    plan = QuantizeLayout.plan(checkpoint, gptq, maxShardBytes);
                }
                if (how.gptq()) {
                    quantizeGptq(src, gptq, plan, how, seed, runDir, trainingData, quantized);
                } else {
                    progress.accept("quantize: " + source + " is not quantized; RTN " + bits + "-bit, group size "
                            + groupSize + " -> " + quantized);
                    paths.writeDirectoryAtomically(quantized, tmp -> shards.run(plan, tmp, "quantize"));
                }
            }
            config = LlamaConfig.read(quantized, paths);
        } else if (config.quantization().groupSize() != groupSize && groupSize > 0) {
            progress.accept("note: " + source + " is already quantized with group size " + config.quantization().groupSize()
                    + "; the adapter pools groups of that size (--group-size " + groupSize + " is ignored)");
        }
        return new Resolved(quantized, config, src.tokenizer());
    }

    /**
     * GPTQ with distributed calibration ({@link GptqJob}): the calibration sequences are drawn (and bad calibration
     * input refused) before any Spark work, written into a work directory under the run, and the work directory is
     * removed once the quantized model is in place.
     */
    private void quantizeGptq(Source src, GptqConfig gptq, QuantizeLayout plan, Quantization how, long seed,
                              String runDir, String trainingData, String quantized) throws IOException {
        CalibrationSampler.Drawn drawn = how.calibrationFile() != null
                ? CalibrationSampler.fromText(how.calibrationFile(), src.tokenizer(), paths, how.samples(), how.tokens(),
                        seed, src.config().vocabSize())
                : CalibrationSampler.fromDataset(trainingData, paths.configuration(), how.samples(), how.tokens(), seed);
        String workDir = HadoopPaths.child(runDir, GPTQ_WORK_DIR);
        paths.delete(workDir); // a previous attempt's leftovers: calibration restarts from the first layer
        CalibrationWork work = new CalibrationWork(workDir, src.model(), gptq, drawn.samples(),
                java.util.UUID.randomUUID().toString(), how.solve());
        CalibrationSampler.write(drawn, work.calibrationFile(), paths);
        List<String> notes = CalibrationSampler.describe(drawn, how.samples(), how.tokens());
        progress.accept(String.format(java.util.Locale.ROOT, "quantize: %s is not quantized; GPTQ %d-bit, group size %d,"
                        + " calibration %d x %d tokens from %s%s, in %d chunk(s), inverse-Hessian solves on the %s -> %s",
                src.model(), gptq.bits(), gptq.groupSize(), drawn.samples(), drawn.tokens(), drawn.source(),
                notes.isEmpty() ? "" : " (" + String.join("; ", notes) + ")", work.chunks(), how.solve().label(),
                quantized));
        GptqJob job = new GptqJob(shards, faults, progress);
        GptqJob.Stats[] stats = new GptqJob.Stats[1];
        paths.writeDirectoryAtomically(quantized, tmp -> stats[0] = job.run(work, plan, src.config().numHiddenLayers(), tmp));
        paths.delete(workDir);
        lastGptqStats = stats[0];
        progress.accept("quantize (gptq): " + stats[0].calibrationTasks() + " calibration tasks (chunk hidden states: "
                + stats[0].hiddenFrom() + "), " + stats[0].solveTasks() + " solve tasks");
    }

    /** The statistics of the last GPTQ run of this stage (tests check that executors kept their hidden states). */
    public GptqJob.Stats lastGptqStats() { return lastGptqStats; }
}
