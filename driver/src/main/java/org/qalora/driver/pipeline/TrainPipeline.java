package org.qalora.driver.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.plan.PlanSettings;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.merge.MergeJob;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.rounds.RoundSettings;
import org.qalora.driver.rounds.TrainingRounds;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.ShardSize;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.cuda.CudaBackend;

/**
 * {@code qalora train}: the stages a fine-tuning needs, in order, each reusing its output when a rerun finds it:
 * check every cheap setting ({@link TrainPreflight}), claim the output directory, model (demo / quantize / vocabulary
 * check), data (prepare), training rounds, merge and publish. One class per stage; this one only wires them.
 */
public final class TrainPipeline {

    /** Where the run ended: the published model directory and the rounds' result. */
    public record Outcome(org.apache.hadoop.fs.Path published, TrainingRounds.Result rounds) {}

    private final Path repoRoot;
    private final Consumer<String> progress;
    private final boolean force;

    public TrainPipeline(Path repoRoot, Consumer<String> progress) {
        this(repoRoot, progress, false);
    }

    /**
     * @param force use an output directory holding other files, or replace there a run that never committed a round
     *              ({@code --force}; see {@link RunDirectory})
     */
    public TrainPipeline(Path repoRoot, Consumer<String> progress, boolean force) {
        this.repoRoot = repoRoot;
        this.progress = progress;
        this.force = force;
    }

    /** Starts Spark (the job's master unless spark-submit set one), runs, stops Spark. */
    public Outcome run(TrainJob job, SparkConf conf) {
        SparkSettings.apply(conf, job.master(), "qalora-train");
        checkDevice(job, conf.get("spark.master"));
        SparkSettings.applyDevice(conf, job.gpuRequested());
        refuseABusyOutput(job, conf);
        SparkSession spark = SparkSession.builder().config(conf).getOrCreate();
        try {
            return run(job, spark);
        } finally {
            spark.stop();
        }
    }

    /**
     * Before Spark starts (seconds, and on a cluster the executors it requests): a run on an output that a live driver
     * holds is refused now, through the job's Hadoop settings. The lock is taken and let go
     * at once; the run takes it again for good once Spark is up (a run that slips in between is refused then).
     */
    private void refuseABusyOutput(TrainJob job, SparkConf conf) {
        // The Hadoop configuration SparkContext will build from this conf (spark.hadoop.*, spark.buffer.size, ...), so
        // that the file system clients this probe creates, and Hadoop caches, are the ones the run would create.
        Configuration hadoop = org.apache.spark.deploy.SparkHadoopUtil.get().newConfiguration(conf);
        Storage storage = new Storage(hadoop);
        org.apache.hadoop.fs.Path root;
        try {
            root = storage.path(job.output());
            if (!storage.isDirectory(root)) {
                return;   // nothing to hold yet; creating it waits for the checks
            }
        } catch (RuntimeException e) {
            return;       // the checks report an unusable output
        }
        OutputLock.acquire(storage, root, progress).close();
    }

    /**
     * Validates the job (every problem at once, nothing written: {@link TrainPreflight}), claims the output
     * directory, then runs the stages. Paths are made absolute URIs first, so that the run directory records what
     * was read and a rerun from another working directory compares like with like.
     */
    public Outcome run(TrainJob given, SparkSession spark) {
        checkDevice(given, spark.sparkContext().master());
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Configuration hadoop = jsc.hadoopConfiguration();
        Storage storage = new Storage(hadoop);
        HadoopPaths paths = new HadoopPaths(hadoop);
        TrainPreflight preflight = new TrainPreflight(storage, repoRoot);
        DataGlobs.Expanded globs = DataGlobs.expand(preflight.normalise(given), storage);
        TrainJob globbed = globs.job();
        RunDirectory run = new RunDirectory(storage, globbed.output(), progress);
        // The output lock (one driver per output) comes before anything reads the directory when the directory
        // exists; a new one is only created, with the lock, once the read-only checks passed (a refused run leaves
        // nothing behind). A second run on a busy output is refused here, naming the holder.
        OutputLock lock = storage.isDirectory(run.root()) ? OutputLock.acquire(storage, run.root(), progress) : null;
        try {
            java.util.Optional<TrainJob> resumed = DataGlobs.resumedRun(globs, run, progress);
            WarmStart.Resolution warm = resumed.isPresent()
                    ? new WarmStart.Resolution(resumed.get(), WarmStart.Source.parse(resumed.get().warmStart())
                            .orElse(null), List.of())
                    : WarmStart.resolve(globbed, run, storage, progress);
            TrainJob job = warm.job();
            List<String> earlier = new java.util.ArrayList<>(globs.problems());
            earlier.addAll(warm.problems());
            preflight.check(job, run, force, earlier);
            if (lock == null) {
                lock = OutputLock.acquire(storage, run.root(), progress);
            }
            return run(job, spark, jsc, hadoop, storage, paths, run, warm.source());
        } finally {
            if (lock != null) {
                lock.close();
            }
        }
    }

    /** The stages, under the output lock, once every check passed. */
    private Outcome run(TrainJob job, SparkSession spark, JavaSparkContext jsc, Configuration hadoop, Storage storage,
                        HadoopPaths paths, RunDirectory run, WarmStart.Source warmStart) {
        HoldPoint hold = HoldPoint.parse(spark.conf().get(HoldPoint.CONF_KEY, ""), progress);
        if (run.claim(job, force)) {
            progress.accept("output " + run.root() + " holds this run (same settings): continuing it");
        }
        String runDir = run.root().toString();
        try {
            // A task's CPU threads: spark.task.cpus on a cluster. In local mode every slot shares the one JVM's trainer
            // (it is not re-entrant, so slots take turns), and each turn may use all cores.
            boolean local = spark.sparkContext().isLocal();
            int threads = local ? Runtime.getRuntime().availableProcessors()
                    : Integer.parseInt(spark.conf().get("spark.task.cpus", "1"));
            long maxShardBytes = ShardSize.parse(job.maxShardSize(), "--max-shard-size");
            FaultPlan faults = FaultPlan.parse(spark.conf().get(FaultPlan.CONF_KEY, ""));
            ShardJob quantizeTasks = new ShardJob(jsc, storage, FaultPlan.none(), threads, progress);
            // The data is prepared before the base is quantized: GPTQ draws its calibration windows from it.
            ModelStage modelStage = new ModelStage(paths, quantizeTasks, maxShardBytes, faults, progress);
            ModelStage.Source source = modelStage.source(job.model(), job.tokenizer(), job.qalora(), job.seed(), runDir,
                    repoRoot);
            DataStage data = new DataStage(paths, progress,
                    new ExampleEncoder.Settings(job.sourceMaxLen(), job.targetMaxLen(), false), job.skipBadRecords());
            String dataset = data.resolve(spark, DataStage.Kind.TRAIN, job.data(), source.tokenizer(), job.template(),
                    runDir);
            String heldOut = job.evalData().isEmpty() ? null : data.resolve(spark, DataStage.Kind.HELD_OUT,
                    job.evalData(), source.tokenizer(), job.template(), runDir);
            ModelStage.Quantization quantization = job.gptq()
                    ? new ModelStage.Quantization(true, job.calibration(), job.calibrationSamples(), job.calibrationTokens(),
                            org.qalora.driver.gptq.GptqSolveChoice.resolve(job.gptqSolve(), job.device(),
                                    spark.sparkContext().getConf(), local))
                    : ModelStage.Quantization.RTN;
            ModelStage.Resolved model = modelStage.quantize(source, job.qalora(), job.bits(), job.groupSize(),
                    quantization, job.seed(), runDir, dataset);
            PlanSettings plan = new PlanSettings(job.seed(), job.slots(), job.stepsPerRound(), job.batchSize(),
                    job.groupByLength(), job.microBatchTokens());
            QaloraConfig adapter = job.qalora()
                    ? QaloraConfig.allProjections(job.rank(), job.alpha(), model.config().quantization().groupSize(),
                            Pooling.fromConfig(job.pooling(), "--pooling"), job.dropout())
                    : QaloraConfig.lora(job.rank(), job.alpha(), job.dropout());
            WorkerTrainerFactory factory = new WorkerTrainerFactory(model.baseModel(), dataset, heldOut, plan, adapter,
                    job.lr(), job.schedule(), job.warmupSteps(), job.totalSteps(), threads, new ShippedHadoopConf(hadoop),
                    job.device(), job.backendPrecision(), job.recompute(), warmStart);
            progress.accept(String.format(java.util.Locale.ROOT,
                    "training: %d rounds x %d slots x %d steps of %d sequences (length grouping %s; micro-batches of "
                            + "<= %d tokens), %s, rank %d, alpha %s, lr %.2e%s (%s schedule, %d warmup steps); "
                            + "device %s, precision %s%s",
                    job.rounds(), job.slots(), job.stepsPerRound(), job.batchSize(),
                    job.groupByLength() == 0 ? "off" : "in mega-batches of " + job.groupByLength(),
                    job.microBatchTokens(), job.qalora() ? "QA-LoRA with " + job.pooling() + " pooling"
                            : "plain LoRA on the float model (no quantization, no pooling)", job.rank(), job.alpha(),
                    factory.effectiveLearningRate(),
                    job.lr() == null ? " (the worker's default for the pooling)" : "", job.lrSchedule(),
                    job.warmupSteps(), job.device(), job.precision(),
                    job.recompute() ? ", activation recompute" : ""));
            if (heldOut != null) {
                progress.accept("held-out loss of the averaged adapter after every " + job.evalEvery() + " round(s) and "
                        + "the last, on " + heldOut);
            }
            CheckpointStore store = new CheckpointStore(storage, run.checkpoints(), progress, hold);
            RoundSettings rounds = new RoundSettings(job.rounds(), job.stepsPerRound(), job.slots(), job.seed(),
                    job.configHash(), job.keepRounds(), job.roundsBetweenEvals(), job.averagingParts(),
                    job.averagingTaskCpus(), job.updateReplication());
            TrainingRounds.Result result = new TrainingRounds(jsc, storage, store, factory, rounds, faults, progress).run();

            MergeJob merge = new MergeJob(new ShardJob(jsc, storage, faults, threads, progress), job.device(), progress);
            PublishStage publish = new PublishStage(storage, hold, merge, maxShardBytes, progress);
            Optional<org.apache.hadoop.fs.Path> done = publish.alreadyPublished(run.root(), job.configHash(), job.rounds());
            org.apache.hadoop.fs.Path published;
            if (done.isPresent()) {
                published = done.get();
                progress.accept("merge: this run's final model is already published");
            } else {
                published = publish.publish(run.root(), model.baseModel(), factory.adapterConfig(), result.last(),
                        job.configHash(), publishedInfo(job, factory.planHash()));
            }
            new ModelPublisher(storage, hold, progress).retain(run.root(), job.keepVersions());
            progress.accept("done: merged " + (job.qalora() ? "quantized" : "float32") + " model in " + published
                    + " (adapter in PEFT layout in " + published + "/" + PublishStage.ADAPTER_DIR + "; metrics in "
                    + run.checkpoints() + "/" + CheckpointStore.METRICS + ")");
            return new Outcome(published, result);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** What the version's manifest records besides the checkpoint's identity: the plan, and the base a warm start must share. */
    private static Map<String, String> publishedInfo(TrainJob job, String planHash) {
        Map<String, String> info = new java.util.LinkedHashMap<>();
        info.put("planHash", planHash);
        info.putAll(WarmStart.baseIdentity(job));
        return info;
    }

    /**
     * {@code --device gpu} or {@code gpu:N} with a master whose tasks run on this machine (local, local-cluster):
     * the GPU must be usable here, checked before any work so that a run without one fails in a second with the
     * reason rather than in the first round's tasks. ({@code gpu} is checked as GPU 0, the one a task without a Spark
     * GPU address uses.) On a cluster the executors' GPUs are not the driver's, so nothing is checked here.
     */
    static void checkDevice(TrainJob job, String master) {
        if (!job.gpuRequested() || !SparkSettings.isLocalMaster(master)) {
            return;
        }
        int ordinal = Backends.gpuOrdinal(job.device());
        String why = CudaBackend.unusableReason(ordinal);
        if (why != null) {
            throw new InvalidSettingsException("cannot start the run (nothing was started or written)",
                    List.of("--device " + job.device() + " was asked for but GPU " + ordinal
                            + " cannot be used on this machine: " + why));
        }
    }
}
