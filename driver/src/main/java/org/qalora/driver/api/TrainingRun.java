package org.qalora.driver.api;

import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * A {@link QaloraTraining#fitAsync} in progress: its result as a future, and cancel. The run's Spark jobs carry a
 * job group of their own (set on its thread only, so the notebook's other jobs are untouched); cancel cancels that
 * group's running tasks and makes the next progress line stop the run. What was committed stays committed.
 */
public final class TrainingRun {
    private final SparkContext context;
    private final String group;
    private final CompletableFuture<TrainingResult> result = new CompletableFuture<>();
    private volatile boolean cancelled;

    private TrainingRun(SparkContext context, String group) {
        this.context = context;
        this.group = group;
    }

    static TrainingRun start(SparkSession spark, Function<Consumer<String>, TrainingResult> fit,
                             Consumer<String> progress) {
        TrainingRun run = new TrainingRun(spark.sparkContext(), "qalora-train-" + UUID.randomUUID());
        Thread thread = new Thread(() -> {
            run.context.setJobGroup(run.group, "qalora train", true);
            try {
                run.result.complete(fit.apply(line -> {
                    if (run.cancelled) {
                        throw new CancellationException("qalora training cancelled");
                    }
                    progress.accept(line);
                }));
            } catch (Throwable t) {
                run.result.completeExceptionally(run.cancelled ? cancellation(t) : t);
            } finally {
                run.context.clearJobGroup();
            }
        }, "qalora-train");
        thread.setDaemon(true);
        thread.start();
        return run;
    }

    private static CancellationException cancellation(Throwable cause) {
        CancellationException e = new CancellationException("qalora training cancelled");
        e.initCause(cause);
        return e;
    }

    /** Completes with the result, or exceptionally with the failure ({@link CancellationException} when cancelled). */
    public CompletableFuture<TrainingResult> result() {
        return result;
    }

    /** Cancels the running tasks of this training and stops it before its next round. */
    public void cancel() {
        cancelled = true;
        context.cancelJobGroup(group);
    }

    public boolean isDone() {
        return result.isDone();
    }
}
