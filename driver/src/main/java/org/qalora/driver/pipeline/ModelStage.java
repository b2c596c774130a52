package org.qalora.driver.pipeline;

import java.io.IOException;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.quantize.QuantizeLayout;

/**
 * The model stages before training: generate the demo model when no {@code --model} was given, quantize the base
 * (RTN) when it is not a GPTQ checkpoint yet (QA-LoRA) or refuse a GPTQ checkpoint (plain LoRA trains the float
 * model), and check that the tokenizer's ids fit the model's vocabulary. Each output is written atomically and
 * reused by a rerun. The driver reads config.json, safetensors headers and the tokenizer only: quantization runs as
 * Spark tasks, one per output shard ({@link QuantizeLayout} through a {@link ShardJob}), and the directory is renamed
 * into place when all of them are done.
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
    private final Consumer<String> progress;

    /**
     * @param shards        runs the quantization tasks
     * @param maxShardBytes the largest weights file of the quantized base ({@code --max-shard-size})
     */
    public ModelStage(HadoopPaths paths, ShardJob shards, long maxShardBytes, Consumer<String> progress) {
        this.paths = paths;
        this.shards = shards;
        this.maxShardBytes = maxShardBytes;
        this.progress = progress;
    }

    /**
     * @param model      the given model, or null for the demo model
     * @param tokenizer  the given tokenizer.json, or null for the model's own
     * @param quantize   QA-LoRA: quantize a float model with RTN ({@code bits}, {@code groupSize}); false (plain
     *                   LoRA): train the float model itself, and refuse a quantized one
     * @param runDir     the run's output directory (demo-model/ and base-quantized/ go there)
     * @param repoRoot   the repository checkout (for the bundled tokenizer of the demo model)
     */
    public Resolved resolve(String model, String tokenizer, boolean quantize, int bits, int groupSize, long seed,
                            String runDir, Path repoRoot) throws IOException {
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
        if (!quantize) {
            return new Resolved(source, config, tok);
        }
        String quantized = source;
        if (!config.isQuantized()) {
            quantized = HadoopPaths.child(runDir, "base-quantized");
            if (paths.exists(HadoopPaths.child(quantized, LlamaConfig.CONFIG_FILE))) {
                progress.accept("quantize: reusing " + quantized);
            } else {
                progress.accept("quantize: " + source + " is not quantized; RTN " + bits + "-bit, group size " + groupSize
                        + " -> " + quantized);
                GptqConfig gptq = GptqConfig.of(bits, groupSize);
                QuantizeLayout plan;
                try (Checkpoint checkpoint = Checkpoint.open(source, paths)) { // headers only
                    plan = QuantizeLayout.plan(checkpoint, gptq, maxShardBytes);
                }
                paths.writeDirectoryAtomically(quantized, tmp -> shards.run(plan, tmp, "quantize"));
            }
            config = LlamaConfig.read(quantized, paths);
        } else if (config.quantization().groupSize() != groupSize && groupSize > 0) {
            progress.accept("note: " + source + " is already quantized with group size " + config.quantization().groupSize()
                    + "; the adapter pools groups of that size (--group-size " + groupSize + " is ignored)");
        }
        return new Resolved(quantized, config, tok);
    }
}
