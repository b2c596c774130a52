package org.qalora.worker.merge;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.model.LlamaModel;

/**
 * Writes a plain LoRA adapter merged into its float base: an HF checkpoint of the same layout as the input, each
 * adapted projection replaced by {@code W + s B A} ({@link LoraMerge}) stored in float32, every other tensor copied
 * in its stored dtype, config.json's dtype set to float32, tokenizer and generation files copied. Float32 because a
 * bf16 rounding of the sum (2^-9 relative) would erase much of a small adapter's delta; config.json says float32 so
 * that HF loads it without rounding the merged weights (the bf16 tensors upcast exactly). The directory is built
 * under a temporary name, re-loaded from disk and checked against the base + adapter model on the probe batch
 * ({@link Merger#LOGIT_TOLERANCE}), and only then renamed into place. {@code qalora quantize} turns the result into a
 * GPTQ model: LoRA, then quantize.
 */
public final class FloatMerger {
    private FloatMerger() {}

    static Merger.Report merge(LlamaModel model, PeftAdapter adapter, String outDir, HadoopPaths paths) {
        if (model.source() == null) {
            throw new IllegalArgumentException("the model was built in memory; merge needs the checkpoint directory");
        }
        int[] probe = Merger.probeIds(model.dims().vocab());
        float[] expected = Merger.probeLogits(model, QaloraAdapter.create(model, adapter.config(), adapter.weights(),
                false), probe);
        double[][] written = new double[1][];
        int[] count = new int[1];
        try (Checkpoint source = Checkpoint.open(model.source(), paths)) {
            Map<String, float[]> merged = LoraMerge.mergeAll(model.backend(), source, model.dims(), adapter.config(),
                    adapter.weights());
            count[0] = merged.size();
            LlamaConfig config = float32(source.config(), model.source());
            paths.writeDirectoryAtomically(outDir, tmp -> {
                SafetensorsWriter w = new SafetensorsWriter();
                for (String name : source.names()) {
                    float[] m = merged.get(name);
                    if (m == null) {
                        w.copy(source, name);
                    } else {
                        w.addFloats(name, DType.F32, m, source.info(name).shape());
                    }
                }
                w.writeCheckpoint(tmp, Merger.MAX_SHARD_BYTES, paths);
                config.write(tmp, paths);
                Merger.copySideFiles(model.source(), tmp, paths);
                // Verify what is on disk, not what is in memory, before the rename makes it visible.
                LlamaModel reread = LlamaModel.load(tmp, model.backend(), paths);
                written[0] = Merger.compare(Merger.probeLogits(reread, null, probe), expected);
                if (!Merger.withinTolerance(written[0][0])) {
                    throw new IOException("the merged float model as written to disk gives logits that differ from "
                            + "the base + LoRA model's by " + written[0][0] + " (relative), not within "
                            + Merger.LOGIT_TOLERANCE + Merger.nonFiniteHint(written[0][0]));
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("merge into " + outDir + " failed: " + e.getMessage(), e);
        }
        return new Merger.Report(outDir, count[0], written[0][0], written[0][1]);
    }

    /** The source's config.json saying float32 ({@code dtype}, v5, and {@code torch_dtype}, v4, where present). */
    static LlamaConfig float32(LlamaConfig c, String where) throws IOException {
        ObjectNode json = c.json();
        boolean v4 = json.has("torch_dtype");
        if (v4) {
            json.put("torch_dtype", "float32");
        }
        if (json.has("dtype") || !v4) {
            json.put("dtype", "float32");
        }
        return LlamaConfig.parse(json.toString(), where + "/" + LlamaConfig.CONFIG_FILE, null);
    }
}
