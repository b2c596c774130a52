package org.qalora.worker.shard;

import java.io.IOException;
import java.io.OutputStream;
import java.io.Serializable;
import java.util.Map;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.SafetensorsStreamWriter;
import org.qalora.quant.safetensors.ShardLayout;

/**
 * A model directory to be written shard by shard, planned before any weight is read: the shard layout (every
 * output tensor's name, dtype, shape and file), a way to produce each tensor's bytes, and the small files
 * (config.json, tokenizer files, the index). Serializable, so a Spark job can ship the plan and let each task write
 * one shard ({@code driver}'s {@code ShardJob}); {@link #writeAll} does the same in one process. The merge
 * ({@code MergeLayout}) and RTN quantization ({@code QuantizeLayout}) are the two plans.
 */
public interface ShardedWrite extends Serializable {

    ShardLayout shards();

    /** Opens what producing tensors needs (the source checkpoint, an adapter file, a backend); one per task. */
    TensorSource open(HadoopPaths paths, int threads) throws IOException;

    /** Writes config.json, the tokenizer and generation files, and the index (when sharded) into {@code dir}. */
    void writeSmallFiles(String dir, HadoopPaths paths) throws IOException;

    /** Streams shard {@code shard} (0-based) of {@code plan}: the header, then one tensor at a time. */
    static void writeShard(ShardedWrite plan, TensorSource source, int shard, OutputStream out) throws IOException {
        SafetensorsStreamWriter.write(out, plan.shards().shard(shard), Map.of(), source::writeTo);
    }

    /** Writes every shard and the small files into {@code dir}, in this process (the CLI; tests). */
    static void writeAll(ShardedWrite plan, String dir, HadoopPaths paths, int threads) throws IOException {
        try (TensorSource source = plan.open(paths, threads)) {
            for (int s = 0; s < plan.shards().count(); s++) {
                int shard = s;
                paths.writeAtomically(HadoopPaths.child(dir, plan.shards().fileName(s)),
                        out -> writeShard(plan, source, shard, out));
            }
        }
        plan.writeSmallFiles(dir, paths);
    }
}
