package org.qalora.driver.rounds;

import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.RoundManifest;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.io.ShippedHadoopConf;

/**
 * Round 0 of a new run: one Spark task builds the initial adapter ({@link SlotTrainerFactory#initialState}: fresh from
 * the seed, or a warm start's state) and writes it into the round's commit directory; the driver then only commits
 * (manifest, rename). The state is the adapter with its Adam moments, 1 GB at LLaMA-7B with r 64 on all seven
 * projections, so building it on the driver would make the driver's heap grow with the adapter; here the driver
 * holds the file's size and SHA-256. The file is the one {@link CheckpointStore#commit} writes for the same state.
 */
public final class InitialStateTask implements FlatMapFunction<Iterator<Integer>, InitialStateTask.Written> {
    private static final long serialVersionUID = 1L;

    /** What the task wrote: the state file's size and SHA-256, and the state's optimizer step. */
    public record Written(long bytes, String sha256, long step) implements java.io.Serializable {}

    private final SlotTrainerFactory factory;
    private final ShippedHadoopConf hadoopConf;
    private final long seed;
    private final String commitDir;

    private InitialStateTask(SlotTrainerFactory factory, ShippedHadoopConf hadoopConf, long seed, String commitDir) {
        this.factory = factory;
        this.hadoopConf = hadoopConf;
        this.seed = seed;
        this.commitDir = commitDir;
    }

    /** Writes the initial state on an executor and commits it as round 0. */
    static CheckpointStore.Committed commit(JavaSparkContext jsc, Storage storage, CheckpointStore store,
                                            SlotTrainerFactory factory, RoundSettings settings, String planHash) {
        Path tmp = store.beginCommit(0);
        InitialStateTask task = new InitialStateTask(factory, new ShippedHadoopConf(storage.conf()), settings.seed(),
                tmp.toString());
        jsc.setJobGroup("qalora-round-0", "qalora round 0: the initial adapter, written on an executor", false);
        Written written;
        try {
            written = jsc.parallelize(List.of(0), 1).mapPartitions(task).collect().get(0);
        } catch (Exception e) { // SparkException is checked in Java's eyes though Scala throws it freely
            storage.deleteQuietly(tmp);
            throw rethrown(e);
        } finally {
            jsc.clearJobGroup();
        }
        return store.commitPrepared(0, tmp, Map.of(CheckpointStore.STATE_FILE,
                new RoundManifest.FileEntry(written.bytes(), written.sha256())), written.step(), planHash,
                settings.configHash(), null);
    }

    /**
     * The task's own exception when Spark carried it back (a bad warm start, an adapter that does not fit the model:
     * the same type and message a driver-side call gave), else the job's failure.
     */
    private static RuntimeException rethrown(Exception e) {
        for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
            if (t instanceof RuntimeException r && !r.getClass().getName().startsWith("org.apache.spark.")) {
                return r;
            }
        }
        String msg = String.valueOf(e.getMessage());
        return new IllegalStateException("writing the initial adapter (round 0) failed: "
                + (msg.indexOf('\n') < 0 ? msg : msg.substring(0, msg.indexOf('\n'))), e);
    }

    @Override
    public Iterator<Written> call(Iterator<Integer> ignored) {
        Storage storage = new Storage(hadoopConf.get());
        AdapterTensors state = factory.initialState(seed);
        TaskContext ctx = TaskContext.get();
        Path target = new Path(commitDir, CheckpointStore.STATE_FILE);
        String tempName = String.format("_tmp-%s-attempt%d-task%d", CheckpointStore.STATE_FILE,
                ctx == null ? 0 : ctx.attemptNumber(), ctx == null ? 0 : ctx.taskAttemptId());
        String sha = AdapterStateFile.write(storage, target, tempName, state, Map.of("round", "0"));
        return List.of(new Written(storage.length(target), sha, state.step())).iterator();
    }
}
