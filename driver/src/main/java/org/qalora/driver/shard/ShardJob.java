package org.qalora.driver.shard;

import java.io.IOException;
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
import org.qalora.worker.shard.ShardedWrite;
import org.qalora.worker.shard.TensorSource;

/**
 * Writes a planned model directory ({@link ShardedWrite}) with one Spark task per shard plus one task for the small
 * files (config.json, tokenizer files, index), so that the weights pass through executors only, each task holding
 * about one projection at a time. Each attempt writes under its own directory and renames into place
 * ({@link AttemptFiles}); the plan's output is deterministic, so a task retried after an executor loss leaves the
 * same bytes. The driver only ships the plan and removes the attempt directories; committing the directory is the
 * caller's (a rename, a manifest).
 */
public final class ShardJob {
    private final JavaSparkContext jsc;
    private final Storage storage;
    private final FaultPlan faults;
    private final int threads;
    private final Consumer<String> progress;

    /**
     * @param faults  test fault injection ({@code mergehalt} / {@code mergethrow}), {@link FaultPlan#none()} otherwise
     * @param threads CPU threads of one task (spark.task.cpus on a cluster; the bytes do not depend on it)
     */
    public ShardJob(JavaSparkContext jsc, Storage storage, FaultPlan faults, int threads, Consumer<String> progress) {
        this.jsc = jsc;
        this.storage = storage;
        this.faults = faults;
        this.threads = threads;
        this.progress = progress;
    }

    public JavaSparkContext sparkContext() { return jsc; }

    public Storage storage() { return storage; }

    public int threads() { return threads; }

    /** Writes {@code plan} into {@code outDir} (created if missing); {@code what} names the job in progress lines. */
    public void run(ShardedWrite plan, String outDir, String what) {
        int shards = plan.shards().count();
        progress.accept(String.format(Locale.ROOT, "%s: %d shard task(s) (%,d bytes of tensors) + 1 task for config, "
                + "tokenizer and index, writing %s", what, shards, plan.shards().totalSize(), outDir));
        storage.mkdirs(new Path(outDir));
        ShippedHadoopConf conf = new ShippedHadoopConf(storage.conf());
        FaultPlan faults = this.faults; // locals: the task closure must not capture this (JavaSparkContext)
        int threads = this.threads;
        List<Integer> tasks = new ArrayList<>();
        for (int t = 0; t <= shards; t++) {
            tasks.add(t); // 0..shards-1: a shard each; shards: the small files
        }
        try {
            jsc.setJobDescription("qalora " + what + ": " + shards + " shard(s) into " + outDir);
            List<Integer> done = jsc.parallelize(tasks, tasks.size()).map(t -> {
                writeTask(plan, t, outDir, conf, faults, threads);
                return t;
            }).collect();
            if (done.size() != tasks.size()) {
                throw new IllegalStateException(what + ": " + done.size() + " of " + tasks.size() + " tasks reported");
            }
        } finally {
            jsc.setJobDescription(null);
            AttemptFiles.removeAll(storage, new Path(outDir));
        }
    }

    /** One task: write shard {@code task} (or the small files) into its attempt directory, then into place. */
    private static void writeTask(ShardedWrite plan, int task, String outDir, ShippedHadoopConf conf, FaultPlan faults,
                                  int threads) throws IOException {
        TaskContext ctx = TaskContext.get();
        int attempt = ctx == null ? 0 : ctx.attemptNumber();
        Storage storage = new Storage(conf.get());
        HadoopPaths paths = storage.paths();
        AttemptFiles files = new AttemptFiles(storage, new Path(outDir), task, ctx == null ? 0 : ctx.taskAttemptId());
        String dir = files.directory().toString();
        if (task < plan.shards().count()) {
            try (TensorSource source = plan.open(paths, threads)) {
                paths.writeAtomically(HadoopPaths.child(dir, plan.shards().fileName(task)),
                        out -> ShardedWrite.writeShard(plan, source, task, out));
            }
        } else {
            plan.writeSmallFiles(dir, paths);
        }
        faults.maybeFireInMerge(task, attempt, FaultPlan.MergePhase.BEFORE_RENAME);
        files.promote();
        faults.maybeFireInMerge(task, attempt, FaultPlan.MergePhase.AFTER_RENAME);
    }
}
