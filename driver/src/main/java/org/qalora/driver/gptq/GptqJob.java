package org.qalora.driver.gptq;

import java.io.IOException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.rounds.SlotTask;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.worker.model.Projection;
import org.qalora.worker.quantize.CalibrationWork;
import org.qalora.worker.quantize.CalibrationWork.HiddenFrom;
import org.qalora.worker.quantize.QuantizeLayout;
import scala.Tuple2;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * GPTQ with distributed calibration, as Spark jobs, layer by layer and stage by stage (true-sequential):
 * <ol>
 *   <li>a calibration job, one task per calibration chunk: the task runs the layer on its chunk's hidden states
 *   (earlier layers and earlier stages already quantized) and writes the chunk's {@code X^T X} (float64) of each
 *   distinct input of the stage (q/k/v share one, o, gate/up share one, down);
 *   <li>a solve job, one task per projection of the stage, in parallel: each adds the chunks' partials in chunk
 *   order (the canonical order single-process GPTQ uses, so the result is the same bits), factorises (on the device
 *   {@link CalibrationWork#solve} names, one for every task, on the task's GPU when it has one) and quantizes;
 * </ol>
 * then the quantized model is written shard by shard ({@link ShardJob}) from the solve tasks' results.
 *
 * <p>Where the sums happen: in the solve tasks, on executors. The driver never holds a weight, an activation or a
 * Hessian; it schedules and deletes work files. (At LLaMA-7B one down_proj Hessian is 11008^2 doubles = 970 MB per
 * partial; summing 16 partials on the driver would make it the memory bottleneck, and the sums would then have to
 * go back out to the solve tasks anyway.) The partials travel through the run directory (HDFS): 16 chunks x
 * (3 x 4096^2 + 11008^2) doubles, about 22 GB per 7B layer over its four stages, each file read by one to three
 * solve tasks and deleted when its stage is done.
 *
 * <p>Executor state: a chunk's hidden states stay in the executor JVM that computed them
 * ({@link CalibrationWork}); each stage's calibration tasks prefer the executor that ran their chunk last (Spark
 * executor locality), so later stages of a layer normally reuse them from memory. Each layer's hidden states are
 * also written to the work directory once, so a task scheduled elsewhere, or retried after an executor loss, reads
 * them instead (same bits either way).
 */
public final class GptqJob {
    /** What the calibration tasks found: how often a chunk's hidden states came from memory, a file, or were computed. */
    public record Stats(Map<HiddenFrom, Integer> hiddenFrom, int calibrationTasks, int solveTasks) {}

    private final ShardJob shards;
    private final FaultPlan faults;
    private final Consumer<String> progress;

    /** @param faults test fault injection ({@code calibrationhalt}); {@link FaultPlan#none()} otherwise */
    public GptqJob(ShardJob shards, FaultPlan faults, Consumer<String> progress) {
        this.shards = shards;
        this.faults = faults;
        this.progress = progress;
    }

    /** Runs the calibration and the solves of every layer, then writes the quantized model into {@code outDir}. */
    public Stats run(CalibrationWork work, QuantizeLayout plan, int layers, String outDir) throws IOException {
        JavaSparkContext jsc = shards.sparkContext();
        Storage storage = shards.storage();
        HadoopPaths paths = storage.paths();
        ShippedHadoopConf conf = new ShippedHadoopConf(storage.conf());
        int threads = shards.threads();
        int chunks = work.chunks();
        FaultPlan faults = this.faults;   // a local, so the task closures capture the plan and not this job
        Map<HiddenFrom, Integer> from = new EnumMap<>(HiddenFrom.class);
        Map<Integer, String> lastExecutor = new HashMap<>(); // chunk -> "executor_<host>_<id>" that last ran it
        int calibrationTasks = 0;
        int solveTasks = 0;
        List<Set<Projection>> stages = work.stages();
        try {
            for (int l = 0; l < layers; l++) {
                for (int s = 0; s < stages.size(); s++) {
                    int layer = l;
                    int stage = s;
                    jsc.setJobDescription(String.format(Locale.ROOT, "qalora gptq: layer %d/%d stage %d/%d, %d calibration "
                            + "chunk(s)", l + 1, layers, s + 1, stages.size(), chunks));
                    // Elements and results are boxed Integers and Strings: classes Kryo already has registered.
                    List<String> done = chunkRdd(jsc, chunks, lastExecutor).map(c -> {
                        HiddenFrom f = CalibrationWork.hessianTask(work, layer, stage, (Integer) c,
                                new Storage(conf.get()).paths(), threads);
                        faults.maybeFireInCalibration(layer, stage, (Integer) c, TaskContext.get().attemptNumber());
                        return c + " " + executorLocation() + " " + f.name();
                    }).collect();
                    for (String d : done) {
                        String[] parts = d.split(" ");
                        lastExecutor.put(Integer.parseInt(parts[0]), parts[1]);
                        from.merge(HiddenFrom.valueOf(parts[2]), 1, Integer::sum);
                    }
                    calibrationTasks += done.size();
                    List<Projection> projections = new ArrayList<>(stages.get(s));
                    jsc.setJobDescription(String.format(Locale.ROOT, "qalora gptq: layer %d/%d stage %d/%d, solve %s",
                            l + 1, layers, s + 1, stages.size(), projections));
                    List<Integer> ordinals = projections.stream().map(Projection::ordinal).toList();
                    List<Integer> solved = jsc.parallelize(ordinals, ordinals.size()).map(p -> {
                        CalibrationWork.solveTask(work, layer, stage, Projection.values()[p],
                                new Storage(conf.get()).paths(), SlotTask.device(TaskContext.get()));
                        return p;
                    }).collect();
                    solveTasks += solved.size();
                    paths.delete(HadoopPaths.child(work.dir(), "partials")); // this stage's partials are used up
                }
                if (l > 0) {
                    deleteHidden(work, l - 1, chunks, paths); // every chunk's layer-l inputs now exist
                }
                progress.accept(String.format(Locale.ROOT, "quantize (gptq): layer %d/%d done", l + 1, layers));
            }
        } finally {
            jsc.setJobDescription(null);
        }
        shards.run(plan.withGptq(work), outDir, "quantize (gptq)");
        return new Stats(from, calibrationTasks, solveTasks);
    }

    /** Chunks 0..n-1, one partition each, each preferring the executor that ran it last (when known). */
    private static JavaRDD<Object> chunkRdd(JavaSparkContext jsc, int chunks, Map<Integer, String> lastExecutor) {
        List<Tuple2<Object, scala.collection.immutable.Seq<String>>> items = new ArrayList<>();
        for (int c = 0; c < chunks; c++) {
            String where = lastExecutor.get(c);
            List<String> prefs = where == null ? List.of() : List.of(where);
            items.add(new Tuple2<>(c, scala.jdk.javaapi.CollectionConverters.asScala(prefs).toList()));
        }
        ClassTag<Object> tag = ClassTag$.MODULE$.AnyRef(); // Object[] partitions: registered; Integer[] is not
        RDD<Object> rdd = jsc.sc().makeRDD(scala.jdk.javaapi.CollectionConverters.asScala(items).toList(), tag);
        return new JavaRDD<>(rdd, tag);
    }

    /** Spark's location string for this executor ({@code TaskLocation}'s executor form), {@code "driver"} locally. */
    private static String executorLocation() {
        SparkEnv env = SparkEnv.get();
        if (env == null) {
            return "driver";
        }
        return "executor_" + env.blockManager().blockManagerId().host() + "_" + env.executorId();
    }

    private static void deleteHidden(CalibrationWork work, int layer, int chunks, HadoopPaths paths) throws IOException {
        for (int c = 0; c < chunks; c++) {
            paths.delete(HadoopPaths.child(work.dir(), String.format(Locale.ROOT, "hidden/layer-%03d-chunk-%02d.f32",
                    layer, c)));
        }
    }
}
