package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.resource.ResourceInformation;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.SegmentDigests;

/**
 * The body of a round's Spark task (one partition = one slot): resolve the device from the task's resources,
 * take the cached trainer, read the round's start state (from the executor's local copy of it), train K steps
 * in it, stream the update to {@code updates-RRRRR/slot-SSSSS.safetensors} under an attempt-unique temporary name
 * and rename it, and return only the small {@link SlotMetrics}. Writing is idempotent: if an earlier attempt
 * already renamed its update into place, that file (bit-identical, since training is deterministic) is kept. The
 * returned {@link SegmentDigests} (header and each tensor, computed while writing) let the averaging tasks check
 * every byte they read is the one the task wrote.
 */
public final class SlotTask implements FlatMapFunction<Iterator<SlotAssignment>, SlotMetrics> {
    private static final long serialVersionUID = 1L;

    private final SlotTrainerFactory factory;
    private final ShippedHadoopConf hadoopConf;
    private final StateRef start;
    private final String updatesDir;
    private final FaultPlan faults;
    private final int rerun;
    private final int updateReplication;

    /**
     * {@code rerun}: 0 for the round's first job, n for the driver's n-th re-run of slots whose update failed
     * verification; {@code updateReplication}: copies of the update file ({@link RoundSettings#updateReplication}).
     */
    public SlotTask(SlotTrainerFactory factory, ShippedHadoopConf hadoopConf, StateRef start, String updatesDir,
                    FaultPlan faults, int rerun, int updateReplication) {
        this.factory = factory;
        this.hadoopConf = hadoopConf;
        this.start = start;
        this.updatesDir = updatesDir;
        this.faults = faults;
        this.rerun = rerun;
        this.updateReplication = updateReplication;
    }

    @Override
    public Iterator<SlotMetrics> call(Iterator<SlotAssignment> assignments) {
        List<SlotMetrics> out = new ArrayList<>(1);
        TaskContext ctx = TaskContext.get();
        String device = device(ctx);
        Storage storage = new Storage(hadoopConf.get());
        while (assignments.hasNext()) {
            SlotAssignment a = assignments.next();
            SlotTrainer trainer = ExecutorCache.trainer(factory, device);
            SlotTrainer.SlotOutcome outcome;
            long t1, t2;
            // Tasks that share a trainer take turns on it anyway (it serialises its calls). Reading the start state
            // inside the turn keeps one on the heap per trainer, the one it trains in, rather than one more per
            // waiting task.
            synchronized (trainer) {
                var startState = start.load(storage);
                t1 = System.nanoTime();
                outcome = trainer.train(a, startState);
                t2 = System.nanoTime();
            }
            int attempt = ctx == null ? 0 : ctx.attemptNumber();
            faults.maybeFire(a.round(), a.slot(), attempt);
            Path target = new Path(updatesDir, CheckpointStore.updateFileName(a.slot()));
            String tempName = String.format("_tmp-slot-%05d-stage%d-attempt%d-task%d", a.slot(),
                    ctx == null ? 0 : ctx.stageAttemptNumber(), attempt, ctx == null ? 0 : ctx.taskAttemptId());
            SegmentDigests digests = AdapterStateFile.writeUpdate(storage, target, tempName, outcome.state(), Map.of(
                    "round", Integer.toString(a.round()), "slot", Integer.toString(a.slot()),
                    "target_tokens", Long.toString(outcome.targetTokens()),
                    "loss_sum", Double.toString(outcome.lossSum()), "steps", Integer.toString(outcome.steps())),
                    updateReplication);
            faults.maybeCorrupt(a.round(), a.slot(), rerun, storage, target);
            out.add(new SlotMetrics(a.slot(), attempt, executorId(), device, outcome.targetTokens(), outcome.lossSum(),
                    (t2 - t1) / 1_000_000, digests));
        }
        return out.iterator();
    }

    /**
     * The GPU this task was given ({@code spark.task.resource.gpu.amount=1}), or "cpu". A retry may land on another
     * GPU; nothing in the result depends on which.
     */
    public static String device(TaskContext ctx) {
        if (ctx == null) {
            return "cpu";
        }
        ResourceInformation gpu = ctx.resourcesJMap().get("gpu");
        if (gpu == null || gpu.addresses().length == 0) {
            return "cpu";
        }
        return "gpu:" + gpu.addresses()[0];
    }

    private static String executorId() {
        SparkEnv env = SparkEnv.get();
        return env == null ? "local" : env.executorId();
    }
}
