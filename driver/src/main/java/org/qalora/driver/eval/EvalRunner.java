package org.qalora.driver.eval;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.qalora.driver.rounds.SlotTask;
import org.qalora.worker.generate.InferenceModel;

/**
 * Runs an evaluation's items on this JVM or as a Spark job. Items are cut into batches of consecutive indices
 * before either: a batch is generated together (its decode steps share matrix products), and a CPU product of
 * one row is computed differently from one of several, so the batches themselves must not depend on how Spark
 * partitions the work. On Spark the batches are the RDD's elements; each executor loads the model once
 * ({@link #MODELS}) and scores its batches with the same {@link ItemScorer} the local loop uses, so a run on a
 * cluster reports exactly the numbers of a local run.
 */
public final class EvalRunner {
    /** Loaded models of this JVM by {@link ModelSpec#identity()} and device: one load per executor and device. */
    private static final Map<String, InferenceModel> MODELS = new ConcurrentHashMap<>();

    private EvalRunner() {}

    static List<EvalItem[]> batches(List<EvalItem> items, int batchSize) {
        if (batchSize < 1) {
            throw new IllegalArgumentException("--batch-size must be >= 1, got " + batchSize);
        }
        List<EvalItem[]> out = new ArrayList<>();
        for (int from = 0; from < items.size(); from += batchSize) {
            out.add(items.subList(from, Math.min(items.size(), from + batchSize)).toArray(new EvalItem[0]));
        }
        return out;
    }

    /** Scores every item here, batch after batch, reporting progress after each batch. */
    public static List<EvalOutcome> local(InferenceModel model, EvalTask task, List<EvalItem> items, int batchSize,
                                          Consumer<String> progress) {
        List<EvalOutcome> out = new ArrayList<>(items.size());
        long t0 = System.nanoTime();
        for (EvalItem[] batch : batches(items, batchSize)) {
            out.addAll(Arrays.asList(ItemScorer.score(model, task, batch)));
            progress.accept(String.format(java.util.Locale.ROOT, "%d/%d items (%.1f s)", out.size(), items.size(),
                    (System.nanoTime() - t0) / 1e9));
        }
        return out;
    }

    /** Scores every item in a Spark job of {@code partitions} tasks; the outcomes come back in index order. */
    public static List<EvalOutcome> spark(JavaSparkContext jsc, ModelSpec spec, EvalTask task, List<EvalItem> items,
                                          int batchSize, int partitions) {
        List<EvalItem[]> batches = batches(items, batchSize);
        int slices = Math.max(1, Math.min(partitions, batches.size()));
        jsc.setJobDescription("qalora eval: " + items.size() + " items in " + batches.size() + " batches, "
                + slices + " tasks");
        List<EvalOutcome> out = new ArrayList<>(jsc.parallelize(batches, slices)
                .mapPartitions(new Partition(spec, task)).collect());
        out.sort(Comparator.comparingInt(EvalOutcome::index));
        return out;
    }

    /** A task: the executor's cached model (loaded on first use), then every batch of the partition in order. */
    static final class Partition implements FlatMapFunction<Iterator<EvalItem[]>, EvalOutcome> {
        private static final long serialVersionUID = 1L;
        private final ModelSpec spec;
        private final EvalTask task;

        Partition(ModelSpec spec, EvalTask task) {
            this.spec = spec;
            this.task = task;
        }

        @Override
        public Iterator<EvalOutcome> call(Iterator<EvalItem[]> batches) {
            String device = SlotTask.device(TaskContext.get());
            String gpu = device.equals("cpu") ? null : device;
            InferenceModel m = MODELS.computeIfAbsent(spec.identity() + "@" + device, k -> spec.open(gpu));
            List<EvalOutcome> out = new ArrayList<>();
            // Tasks of one executor share the model; a backend runs one pass at a time, using all its threads.
            synchronized (m) {
                while (batches.hasNext()) {
                    out.addAll(Arrays.asList(ItemScorer.score(m, task, batches.next())));
                }
            }
            return out.iterator();
        }
    }
}
