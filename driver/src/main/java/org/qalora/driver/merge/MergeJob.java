package org.qalora.driver.merge;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.function.Consumer;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.rounds.SlotTask;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.backend.Backends;
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
 *   ({@link MergeVerifier}) on the device the run asked for ({@code --device}: the task's GPU where it has one, in
 *   fp32): the models are loaded on an executor, never on the driver.
 * </ol>
 * The caller commits the directory (manifest, rename, LATEST): {@code ModelPublisher}.
 */
public final class MergeJob {
    private final ShardJob shards;
    private final String requestedDevice;
    private final Consumer<String> progress;

    /** @param requestedDevice {@code auto}, {@code cpu}, {@code gpu} or {@code gpu:N}, as for training */
    public MergeJob(ShardJob shards, String requestedDevice, Consumer<String> progress) {
        this.shards = shards;
        this.requestedDevice = Backends.checkRequested(requestedDevice);
        this.progress = progress;
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
        String requested = requestedDevice;
        jsc.setJobDescription("qalora merge: check " + outDir + " against the base + adapter model");
        try {
            // Object[] {device, relative error, max abs difference}: registered with Kryo, unlike a record of ours
            Object[] check = jsc.parallelize(List.of(0), 1).map(t -> {
                String address = SlotTask.device(TaskContext.get());
                String device = Backends.resolve(requested, "cpu".equals(address) ? null : address);
                // The run's training is over: its cached trainer's base would sit beside the two models loaded here.
                org.qalora.driver.rounds.ExecutorCache.releaseAll();
                Merger.Report r = MergeVerifier.verify(layout, baseModel, adapterDir, outDir,
                        new HadoopPaths(conf.get()), device, threads);
                return new Object[] {device, r.relativeLogitError(), r.maxAbsLogitDiff()};
            }).collect().get(0);
            progress.accept("merge: checked on an executor's " + check[0] + " in fp32");
            return new Merger.Report(outDir, layout.adaptedProjections(), (Double) check[1], (Double) check[2]);
        } finally {
            jsc.setJobDescription(null);
        }
    }
}
