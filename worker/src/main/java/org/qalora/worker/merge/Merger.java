package org.qalora.worker.merge;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.Projection;

/**
 * Writes the merged model: the adapter folded into float zero points ({@link ZeroPointMerge}), every projection
 * stored in the {@code qalora_float_zeros} GPTQ format, all other tensors copied unchanged, config.json with the
 * new checkpoint_format, tokenizer and generation files copied. The directory is built under a temporary name,
 * re-loaded from disk and checked against the adapter model on a probe batch, and only then renamed into place;
 * a merge whose logits differ by more than {@link #LOGIT_TOLERANCE} leaves nothing behind. A plain LoRA adapter
 * goes to {@link FloatMerger} instead (float weights, the same checks).
 */
public final class Merger {
    /**
     * Allowed {@code ||merged - adapter|| / ||adapter||} of the probe logits. The two differ only by float32
     * rounding (the merge is exact in real arithmetic), which measures ~1e-7 on the fixtures; 1e-4 leaves room for
     * larger models while still catching any wrong factor or sign (those give errors of 1e-2 and more).
     */
    public static final double LOGIT_TOLERANCE = 1e-4;

    /** Files copied from the base model directory when present. */
    public static final List<String> SIDE_FILES = List.of("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
            "special_tokens_map.json", "added_tokens.json", "generation_config.json");

    /** Largest shard written (HF's default is 5 GB; keep below the 2 GiB Java array limit per tensor anyway). */
    static final long MAX_SHARD_BYTES = 4L << 30;

    /** What a merge did. */
    public record Report(String output, int mergedProjections, double relativeLogitError, double maxAbsLogitDiff) {}

    private Merger() {}

    /**
     * Merges {@code adapterDir} into the GPTQ model at {@code modelDir}, writing {@code outDir} (must not exist). The
     * check runs on the CPU in fp32: {@link #LOGIT_TOLERANCE} is a float32 rounding bound.
     */
    public static Report merge(String modelDir, String adapterDir, String outDir) {
        return merge(modelDir, adapterDir, outDir, HadoopPaths.defaults());
    }

    /** As {@link #merge(String, String, String)}, every file read and written through {@code paths}. */
    public static Report merge(String modelDir, String adapterDir, String outDir, HadoopPaths paths) {
        try (Backend backend = Backends.open("cpu", Precision.FP32, Runtime.getRuntime().availableProcessors())) {
            return merge(LlamaModel.load(modelDir, backend, paths), PeftAdapter.read(adapterDir, paths), outDir, paths);
        }
    }

    /** Merges the trainer's final state into its base model (see {@link #merge(LlamaModel, PeftAdapter, String)}). */
    public static Report merge(LlamaModel model, org.qalora.worker.train.AdapterState state, String outDir) {
        return merge(model, new PeftAdapter(state.config(), state.weightMap()), outDir);
    }

    /**
     * Merges an adapter into a loaded model on this machine's default Hadoop configuration (CLI use); inside a
     * Spark job use {@link #merge(LlamaModel, PeftAdapter, String, HadoopPaths)} with the job's configuration.
     */
    public static Report merge(LlamaModel model, PeftAdapter adapter, String outDir) {
        return merge(model, adapter, outDir, HadoopPaths.defaults());
    }

    /**
     * Merges an adapter (e.g. the trainer's final state) into a loaded model; {@code model.source()} is copied from.
     * Every file is read and written through {@code paths}.
     */
    public static Report merge(LlamaModel model, PeftAdapter adapter, String outDir, HadoopPaths paths) {
        if (adapter.config().plainLora()) {
            return FloatMerger.merge(model, adapter, outDir, paths);
        }
        return merge(model, adapter, outDir, paths, ZeroPointMerge::mergeAll);
    }

    /** How the adapter is folded into the projections; a parameter so tests can check that a wrong fold is refused. */
    @FunctionalInterface
    interface Fold {
        Map<String, QuantizedMatrix> apply(LlamaModel model, QaloraConfig config, Map<String, float[]> weights);
    }

    static Report merge(LlamaModel model, PeftAdapter adapter, String outDir, HadoopPaths paths, Fold fold) {
        if (model.source() == null) {
            throw new IllegalArgumentException("the model was built in memory; merge needs the checkpoint directory");
        }
        Map<String, QuantizedMatrix> merged = fold.apply(model, adapter.config(), adapter.weights());
        int[] probe = probeIds(model.dims().vocab());
        float[] expected = probeLogits(model, QaloraAdapter.create(model, adapter.config(), adapter.weights(), false), probe);
        double[] inMemory = compare(probeLogits(model.withQuantized(merged), null, probe), expected);
        if (!withinTolerance(inMemory[0])) { // NaN-safe: a NaN error is refused too
            throw new IllegalStateException("merged model logits differ from the adapter model's by " + inMemory[0]
                    + " (relative), not within " + LOGIT_TOLERANCE + nonFiniteHint(inMemory[0])
                    + ": refusing to write " + outDir);
        }
        double[][] written = new double[1][];
        try (Checkpoint source = Checkpoint.open(model.source(), paths)) {
            LlamaConfig config = source.config();
            GptqConfig gptq = config.quantization().withFormat(GptqConfig.CheckpointFormat.QALORA_FLOAT_ZEROS);
            paths.writeDirectoryAtomically(outDir, tmp -> {
                SafetensorsWriter w = new SafetensorsWriter();
                for (String name : source.names()) {
                    if (!isProjectionTensor(name)) {
                        w.copy(source, name);
                    }
                }
                for (Map.Entry<String, QuantizedMatrix> e : model.quantizedMatrices().entrySet()) {
                    // getValue() rebuilds the base's matrix from the backend: only for projections not merged
                    QuantizedMatrix m = merged.containsKey(e.getKey()) ? merged.get(e.getKey()) : e.getValue();
                    GptqCodec.write(w, e.getKey(), m, GptqConfig.CheckpointFormat.QALORA_FLOAT_ZEROS);
                }
                w.writeCheckpoint(tmp, MAX_SHARD_BYTES, paths);
                config.withQuantization(gptq).write(tmp, paths);
                copySideFiles(model.source(), tmp, paths);
                // Verify what is on disk, not what is in memory, before the rename makes it visible.
                LlamaModel reread = LlamaModel.load(tmp, model.backend(), paths);
                written[0] = compare(probeLogits(reread, null, probe), expected);
                if (!withinTolerance(written[0][0])) {
                    throw new IOException("the merged model as written to disk gives logits that differ from the "
                            + "adapter model's by " + written[0][0] + " (relative), not within " + LOGIT_TOLERANCE
                            + nonFiniteHint(written[0][0]));
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("merge into " + outDir + " failed: " + e.getMessage(), e);
        }
        return new Report(outDir, merged.size(), written[0][0], written[0][1]);
    }

    /** Copies {@link #SIDE_FILES} that exist beside the source model into {@code dir}. */
    static void copySideFiles(String source, String dir, HadoopPaths paths) throws IOException {
        for (String file : SIDE_FILES) {
            String from = HadoopPaths.child(source, file);
            if (paths.exists(from)) {
                byte[] bytes = paths.readAllBytes(from);
                paths.writeAtomically(HadoopPaths.child(dir, file), out -> out.write(bytes));
            }
        }
    }

    /** {@code !(err <= tol)} is the refusal test: a NaN error (non-finite logits) is never within tolerance. */
    static boolean withinTolerance(double relativeError) {
        return relativeError <= LOGIT_TOLERANCE;
    }

    static String nonFiniteHint(double relativeError) {
        return Double.isFinite(relativeError) ? ""
                : " (the probe logits are not finite: a weight of the model or adapter holds NaN or infinity)";
    }

    static boolean isProjectionTensor(String name) {
        for (Projection p : Projection.values()) {
            int at = name.indexOf("." + p.module() + ".");
            if (name.startsWith("model.layers.") && at > 0) {
                return true;
            }
        }
        return false;
    }

    /** A fixed probe batch: 2 sequences of 32 pseudo-random token ids. */
    static int[] probeIds(int vocab) {
        SplittableRandom rng = new SplittableRandom(20240917);
        int[] ids = new int[2 * 32];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rng.nextInt(vocab);
        }
        return ids;
    }

    static float[] probeLogits(LlamaModel model, QaloraAdapter adapter, int[] ids) {
        ActivationPlan plan = new ActivationPlan(model, adapter == null ? null : adapter.config(), 2, ids.length / 2,
                false, false);
        LlamaPass.forward(model, adapter, plan, ids, 0, null);
        return LlamaPass.logits(model, plan);
    }

    /** {relative error, max abs diff}. */
    static double[] compare(float[] out, float[] ref) {
        double max = 0;
        for (int i = 0; i < ref.length; i++) {
            max = Math.max(max, Math.abs(out[i] - ref[i]));
        }
        return new double[] {MergeCheck.relativeError(out, ref), max};
    }
}
