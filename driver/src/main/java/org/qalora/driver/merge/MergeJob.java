package org.qalora.driver.merge;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.merge.MergeLayout;
import org.qalora.worker.merge.MergeMetadata;
import org.qalora.worker.merge.MergeVerifier;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.merge.ShardMerger;

/**
 * The merge as Spark jobs, so that no weight passes through the driver:
 * <ol>
 *   <li>the driver plans the output from the base's headers and config.json ({@link MergeLayout}: every tensor's
 *   name, dtype, shape and shard);
 *   <li>one task per shard folds the adapter into that shard's projections and streams the shard
 *   ({@link ShardMerger}); one more task writes config.json, the tokenizer files and the index
 *   ({@link MergeMetadata}); each attempt writes under its own directory and renames into place
 *   ({@link AttemptFiles}), so a task retried after an executor loss yields the same bytes;
 *   <li>one task checks the written model's probe logits against the base + adapter model's
 *   ({@link MergeVerifier}): this loads the models on an executor, never on the driver.
 * </ol>
 * The caller commits the directory (manifest, rename, LATEST): {@code ModelPublisher}.
 */
public final class MergeJob {
    private final JavaSparkContext jsc;
    private final Storage storage;
    private final FaultPlan faults;
    private final int threads;
    private final Consumer<String> progress;

    /** @param threads CPU threads of one task (spark.task.cpus on a cluster; the merged bytes do not depend on it) */
    public MergeJob(JavaSparkContext jsc, Storage storage, FaultPlan faults, int threads, Consumer<String> progress) {
        this.jsc = jsc;
        this.storage = storage;
        this.faults = faults;
        this.threads = threads;
        this.progress = progress;
    }

    /**
     * Writes the merged model of {@code baseModel} and the PEFT adapter in {@code adapterDir} into {@code outDir}
     * (created if missing; the caller publishes it) and verifies it.
     *
     * @throws IllegalStateException when the check refuses the merged model (the message says by how much)
     */
    public Merger.Report run(String baseModel, String adapterDir, String outDir, long maxShardBytes) {
        HadoopPaths paths = storage.paths();
        MergeLayout layout;
        try (Checkpoint source = Checkpoint.open(baseModel, paths)) { // headers only
            layout = MergeLayout.plan(source, PeftAdapter.readConfig(adapterDir, paths), maxShardBytes);
        } catch (IOException e) {
            throw new UncheckedIOException("merge: cannot plan from " + baseModel + ": " + e.getMessage(), e);
        }
        int shards = layout.shards().count();
        progress.accept(String.format(Locale.ROOT, "merge: %d shard task(s) of at most %,d bytes each (%,d bytes of "
                + "tensors) + 1 task for config, tokenizer and index", shards, maxShardBytes, layout.shards().totalSize()));
        storage.mkdirs(new Path(outDir));
        ShippedHadoopConf conf = new ShippedHadoopConf(storage.conf());
        FaultPlan faults = this.faults;
        int threads = this.threads;
        List<Integer> tasks = new ArrayList<>();
        for (int t = 0; t <= shards; t++) {
            tasks.add(t); // 0..shards-1: a shard each; shards: the small files
        }
        try {
            jsc.setJobDescription("qalora merge: write " + shards + " shard(s) of " + outDir);
            List<Integer> done = jsc.parallelize(tasks, tasks.size()).map(t -> {
                writeTask(layout, t, baseModel, adapterDir, outDir, conf, faults, threads);
                return t;
            }).collect();
            if (done.size() != tasks.size()) {
                throw new IllegalStateException("merge: " + done.size() + " of " + tasks.size() + " tasks reported");
            }
        } finally {
            AttemptFiles.removeAll(storage, new Path(outDir));
        }
        jsc.setJobDescription("qalora merge: check " + outDir + " against the adapter model");
        double[] check = jsc.parallelize(List.of(0), 1).map(t -> {
            Merger.Report r = MergeVerifier.verify(layout, baseModel, adapterDir, outDir, new HadoopPaths(conf.get()),
                    threads);
            return new double[] {r.relativeLogitError(), r.maxAbsLogitDiff()};
        }).collect().get(0);
        jsc.setJobDescription(null);
        return new Merger.Report(outDir, layout.adaptedProjections(), check[0], check[1]);
    }

    /** One task: write shard {@code task} (or the small files) into its attempt directory, then into place. */
    private static void writeTask(MergeLayout layout, int task, String baseModel, String adapterDir, String outDir,
                                  ShippedHadoopConf conf, FaultPlan faults, int threads) throws IOException {
        TaskContext ctx = TaskContext.get();
        int attempt = ctx == null ? 0 : ctx.attemptNumber();
        Storage storage = new Storage(conf.get());
        HadoopPaths paths = storage.paths();
        AttemptFiles files = new AttemptFiles(storage, new Path(outDir), task, ctx == null ? 0 : ctx.taskAttemptId());
        String dir = files.directory().toString();
        if (task < layout.shards().count()) {
            try (ShardMerger merger = new ShardMerger(layout, baseModel, adapterDir, paths, threads)) {
                paths.writeAtomically(HadoopPaths.child(dir, layout.shards().fileName(task)),
                        out -> merger.writeShard(task, out));
            }
        } else {
            MergeMetadata.write(layout, baseModel, dir, paths);
        }
        faults.maybeFireInMerge(task, attempt, FaultPlan.MergePhase.BEFORE_RENAME);
        files.promote();
        faults.maybeFireInMerge(task, attempt, FaultPlan.MergePhase.AFTER_RENAME);
    }
}
