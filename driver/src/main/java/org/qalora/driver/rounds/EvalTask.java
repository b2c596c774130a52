package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.io.ShippedHadoopConf;

/**
 * The body of a held-out evaluation task (one partition = one part of the held-out batches): take the executor's
 * cached trainer (its base model is already loaded for training) and the committed round's state (cached by its
 * SHA-256, so the next round's training tasks on this executor find it read), and return the loss sum of the part.
 * The adapter weights never pass through the driver; the result does not depend on the executor or the attempt.
 */
public final class EvalTask implements FlatMapFunction<Iterator<Integer>, EvalMetrics> {
    private static final long serialVersionUID = 1L;

    private final SlotTrainerFactory factory;
    private final ShippedHadoopConf hadoopConf;
    private final StateRef state;
    private final int parts;

    public EvalTask(SlotTrainerFactory factory, ShippedHadoopConf hadoopConf, StateRef state, int parts) {
        this.factory = factory;
        this.hadoopConf = hadoopConf;
        this.state = state;
        this.parts = parts;
    }

    @Override
    public Iterator<EvalMetrics> call(Iterator<Integer> partIds) {
        List<EvalMetrics> out = new ArrayList<>(1);
        String device = SlotTask.device(TaskContext.get());
        Storage storage = new Storage(hadoopConf.get());
        while (partIds.hasNext()) {
            int part = partIds.next();
            SlotTrainer trainer = ExecutorCache.trainer(factory, device);
            long t0;
            SlotTrainer.EvalOutcome e;
            synchronized (trainer) { // as SlotTask: a task waiting for the trainer holds no copy of the state
                AdapterTensors adapter = state.load(storage);
                t0 = System.nanoTime();
                e = trainer.evaluate(adapter, part, parts);
            }
            SparkEnv env = SparkEnv.get();
            out.add(new EvalMetrics(part, env == null ? "local" : env.executorId(), device, e.targetTokens(),
                    e.lossSum(), (System.nanoTime() - t0) / 1_000_000));
        }
        return out.iterator();
    }
}
