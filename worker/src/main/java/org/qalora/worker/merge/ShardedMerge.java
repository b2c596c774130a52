package org.qalora.worker.merge;

import java.io.IOException;
import java.io.UncheckedIOException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.shard.ShardedWrite;

/**
 * The streaming merge in one process ({@code qalora merge}): plan ({@link MergeLayout}), write every shard
 * ({@link ShardMerger}), the small files ({@link MergeMetadata}), verify ({@link MergeVerifier}), then rename the
 * directory into place. The Spark merge job runs the same steps, one shard per task, and so writes the same bytes.
 */
public final class ShardedMerge {
    private ShardedMerge() {}

    /** @param maxShardBytes the largest shard ({@code --max-shard-size}, parsed by {@code ShardSize}) */
    public static Merger.Report merge(String modelDir, String adapterDir, String outDir, long maxShardBytes,
                                      HadoopPaths paths) {
        int threads = Runtime.getRuntime().availableProcessors();
        Merger.Report[] report = new Merger.Report[1];
        try {
            MergeLayout layout;
            try (Checkpoint source = Checkpoint.open(modelDir, paths)) {
                layout = MergeLayout.plan(source, adapterDir, maxShardBytes, paths);
            }
            paths.writeDirectoryAtomically(outDir, tmp -> {
                ShardedWrite.writeAll(layout, tmp, paths, threads);
                try {
                    report[0] = MergeVerifier.verify(layout, modelDir, adapterDir, tmp, paths, "cpu", threads);
                } catch (IllegalStateException e) {
                    throw new IOException(e.getMessage(), e);
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("merge into " + outDir + " failed: " + e.getMessage(), e);
        }
        return new Merger.Report(outDir, report[0].mergedProjections(), report[0].relativeLogitError(),
                report[0].maxAbsLogitDiff());
    }
}
