package org.qalora.worker.merge;

import java.io.IOException;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;

/**
 * The merged model's small files: config.json ({@code qalora_float_zeros} for QA-LoRA, float32 for plain LoRA),
 * the tokenizer and generation files of the base, and {@code model.safetensors.index.json} when the layout has
 * more than one shard. Written from the plan and config.json only, so any task (or the CLI) can write them.
 */
public final class MergeMetadata {
    private MergeMetadata() {}

    public static void write(MergeLayout layout, String sourceDir, String outDir, HadoopPaths paths) throws IOException {
        LlamaConfig config = LlamaConfig.read(sourceDir, paths);
        LlamaConfig merged = layout.adapter().plainLora() ? FloatMerger.float32(config, sourceDir)
                : config.withQuantization(config.quantization().withFormat(GptqConfig.CheckpointFormat.QALORA_FLOAT_ZEROS));
        merged.write(outDir, paths);
        Merger.copySideFiles(sourceDir, outDir, paths);
        if (layout.shards().sharded()) {
            byte[] index = layout.shards().indexJson();
            paths.writeAtomically(HadoopPaths.child(outDir, Checkpoint.INDEX_FILE), out -> out.write(index));
        }
    }
}
