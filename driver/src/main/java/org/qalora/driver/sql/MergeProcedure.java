package org.qalora.driver.sql;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainSetting.Kind;
import org.qalora.driver.merge.MergeJob;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.safetensors.ShardSize;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.merge.Merger;
import org.slf4j.LoggerFactory;

/**
 * {@code CALL qalora.system.merge(model => '..', adapter => '..', output => '..')}: {@code qalora merge} on the
 * calling session's executors: the PEFT adapter (QA-LoRA into the GPTQ base's zero points, plain LoRA into the float
 * base's weights) merged by the same {@link MergeJob} that {@code train} publishes with, one Spark task per shard and
 * the merged model's logits checked against base + adapter on an executor. The model is written to a temporary
 * sibling and renamed to {@code output}, which must not exist yet. A run's final adapter is in
 * {@code <published model>/adapter}. Returns one row: output, merged_projections, relative_logit_error,
 * max_abs_logit_diff.
 */
final class MergeProcedure extends QaloraProcedure {
    static final String NAME = "merge";

    static final StructType RESULT = new StructType()
            .add("output", DataTypes.StringType, false)
            .add("merged_projections", DataTypes.IntegerType, false)
            .add("relative_logit_error", DataTypes.DoubleType, false)
            .add("max_abs_logit_diff", DataTypes.DoubleType, false);

    MergeProcedure() {
        super(NAME, "merge a PEFT adapter into its base model with Spark tasks, check it, write it to a new directory");
    }

    @Override
    List<SqlParameter> parameters() {
        return List.of(
                new SqlParameter("model", Kind.STRING, true, "the base the adapter was trained on (GPTQ for QA-LoRA, "
                        + "float for LoRA), any Hadoop path"),
                new SqlParameter("adapter", Kind.STRING, true, "PEFT adapter directory (a published run's is "
                        + "<model>/adapter)"),
                new SqlParameter("output", Kind.STRING, true, "merged model directory; must not exist"),
                new SqlParameter("max_shard_size", Kind.STRING, false, "largest weights file, as HF spells it (5GB, "
                        + "500MB); default " + ShardSize.DEFAULT),
                new SqlParameter("device", Kind.STRING, false, "where the check runs: auto, cpu, gpu or gpu:N; "
                        + "default auto"));
    }

    @Override
    ResultRows call(SparkSession spark, Map<String, Object> args) {
        String model = (String) args.get("model");
        String adapter = (String) args.get("adapter");
        String output = (String) args.get("output");
        String device = (String) args.getOrDefault("device", "auto");
        long maxShardBytes;
        try {
            maxShardBytes = ShardSize.parse((String) args.getOrDefault("max_shard_size", ShardSize.DEFAULT),
                    "max_shard_size");
            Backends.checkRequested(device);
        } catch (IllegalArgumentException e) {
            throw new InvalidSettingsException(callName() + ": " + e.getMessage());
        }
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Storage storage = new Storage(jsc.hadoopConfiguration());
        Consumer<String> log = LoggerFactory.getLogger(MergeProcedure.class)::info;
        // A task's CPU threads, as train takes them: spark.task.cpus on a cluster, every core in local mode.
        int threads = jsc.sc().isLocal() ? Runtime.getRuntime().availableProcessors()
                : Integer.parseInt(jsc.getConf().get("spark.task.cpus", "1"));
        Merger.Report[] report = new Merger.Report[1];
        try {
            if (storage.paths().exists(output)) {
                throw new InvalidSettingsException(callName() + ": output " + output + " already exists: choose a new "
                        + "directory (the merge never replaces a model someone may be reading)");
            }
            output = storage.paths().qualified(output);   // what the row reports: before it exists, no trailing '/'
            storage.paths().writeDirectoryAtomically(output, tmp -> report[0] = new MergeJob(
                    new ShardJob(jsc, storage, FaultPlan.none(), threads, log), device, log)
                    .run(model, adapter, tmp, maxShardBytes));
        } catch (IOException e) {
            throw new UncheckedIOException(callName() + ": " + e.getMessage(), e);
        }
        Merger.Report r = report[0];
        InternalRow row = new GenericInternalRow(new Object[] {UTF8String.fromString(output), r.mergedProjections(),
                r.relativeLogitError(), r.maxAbsLogitDiff()});
        return new ResultRows(RESULT, new InternalRow[] {row});
    }
}
