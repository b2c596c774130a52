package org.qalora.driver.merge;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.merge.MergeLayout;
import org.qalora.worker.merge.MergeVerifier;
import org.qalora.worker.merge.Merger;

/**
 * The merge as Spark jobs, so that no weight passes through the driver:
 * <ol>
 *   <li>the driver plans the output from the base's headers and config.json and adapter_config.json
 *   ({@link MergeLayout}: every tensor's name, dtype, shape and shard);
 *   <li>a {@link ShardJob}: one task per shard folds the adapter into that shard's projections and streams it, one
 *   more writes config.json, the tokenizer files and the index;
 *   <li>one task checks the written model's probe logits against the base + adapter model's
 *   ({@link MergeVerifier}): the models are loaded on an executor, never on the driver.
 * </ol>
 * The caller commits the directory (manifest, rename, LATEST): {@code ModelPublisher}.
 */
public final class MergeJob {
    private final ShardJob shards;

    public MergeJob(ShardJob shards) {
        this.shards = shards;
    }

    /**
     * Writes the merged model of {@code baseModel} and the PEFT adapter in {@code adapterDir} into {@code outDir}
     * (created if missing) and verifies it.
     *
     * @throws IllegalStateException when the check refuses the merged model (the message says by how much)
     */
    public Merger.Report run(String baseModel, String adapterDir, String outDir, long maxShardBytes) {
        HadoopPaths paths = shards.storage().paths();
        MergeLayout layout;
        try (Checkpoint source = Checkpoint.open(baseModel, paths)) { // headers only
            layout = MergeLayout.plan(source, adapterDir, maxShardBytes, paths);
        } catch (IOException e) {
            throw new UncheckedIOException("merge: cannot plan from " + baseModel + ": " + e.getMessage(), e);
        }
        shards.run(layout, outDir, "merge");
        JavaSparkContext jsc = shards.sparkContext();
        ShippedHadoopConf conf = new ShippedHadoopConf(shards.storage().conf());
        int threads = shards.threads();
        jsc.setJobDescription("qalora merge: check " + outDir + " against the base + adapter model");
        try {
            double[] check = jsc.parallelize(List.of(0), 1).map(t -> {
                Merger.Report r = MergeVerifier.verify(layout, baseModel, adapterDir, outDir,
                        new HadoopPaths(conf.get()), threads);
                return new double[] {r.relativeLogitError(), r.maxAbsLogitDiff()};
            }).collect().get(0);
            return new Merger.Report(outDir, layout.adaptedProjections(), check[0], check[1]);
        } finally {
            jsc.setJobDescription(null);
        }
    }
}
