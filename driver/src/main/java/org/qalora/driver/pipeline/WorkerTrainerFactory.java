package org.qalora.driver.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.datasets.plan.HeldOutBatches;
import org.qalora.datasets.plan.PlanSettings;
import org.qalora.datasets.plan.PlannedBatch;
import org.qalora.datasets.plan.ShardBatchReader;
import org.qalora.datasets.plan.TokenBatch;
import org.qalora.datasets.plan.TrainingPlan;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.rounds.SlotAssignment;
import org.qalora.driver.rounds.SlotTrainer;
import org.qalora.driver.rounds.SlotTrainerFactory;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.train.AdapterState;
import org.qalora.worker.train.HeldOutLoss;
import org.qalora.worker.train.LocalTrainer;
import org.qalora.worker.train.MicroBatch;
import org.qalora.worker.train.NonFiniteLossException;
import org.qalora.worker.train.Schedule;
import org.qalora.worker.train.TrainResult;
import org.qalora.worker.train.TrainingConfig;

/**
 * The real {@link SlotTrainerFactory}: the worker's {@link LocalTrainer} on the quantized base model, fed with the
 * datasets module's {@link TrainingPlan}. Shipped to executors in the round closure; {@link #open} loads the base
 * model and the plan once per executor and device (the executor cache keeps them across rounds), on the backend
 * {@link Backends} opens for the requested device and the task's GPU address.
 *
 * <p>Rounds are 1-based here (round r turns committed state r-1 into r); the plan's rounds are 0-based, so round r
 * trains the plan's round r-1.
 */
public final class WorkerTrainerFactory implements SlotTrainerFactory {
    private static final long serialVersionUID = 1L;

    private final String model;
    private final String dataset;
    private final String evalDataset;
    private final PlanSettings planSettings;
    private final String planHash;
    private final QaloraConfig adapter;
    private final Double learningRate;
    private final Schedule schedule;
    private final long warmupSteps;
    private final long totalSteps;
    private final int threads;
    private final ShippedHadoopConf hadoopConf;
    private final String requestedDevice;
    private final Precision precision;
    private final boolean recompute;
    private final WarmStart.Source warmStart;   // null: round 0 is a fresh adapter

    /**
     * @param model           quantized base model directory (any Hadoop path)
     * @param dataset         prepared dataset directory
     * @param evalDataset     prepared held-out dataset directory, or null for none
     * @param adapter         QA-LoRA (pooled, on a quantized base) or plain LoRA ({@link QaloraConfig#lora}) settings
     * @param threads         CPU threads of one task's backend ({@code spark.task.cpus})
     * @param requestedDevice {@code auto}, {@code cpu}, {@code gpu} or {@code gpu:N} ({@link Backends#resolve})
     * @param precision       null for the resolved device's default (bf16 on a GPU, fp32 on the CPU)
     * @param recompute       per-layer activation recompute in backward
     * @throws IllegalArgumentException for a malformed device or bf16 with {@code cpu}
     */
    public WorkerTrainerFactory(String model, String dataset, String evalDataset, PlanSettings planSettings,
                                QaloraConfig adapter,
                                Double learningRate, long totalSteps, int threads, ShippedHadoopConf hadoopConf,
                                String requestedDevice, Precision precision, boolean recompute) {
        this(model, dataset, evalDataset, planSettings, adapter, learningRate, Schedule.CONSTANT, 0, totalSteps, threads,
                hadoopConf, requestedDevice, precision, recompute);
    }

    /**
     * @param schedule    the learning-rate schedule over {@code totalSteps} ({@code --lr-schedule})
     * @param warmupSteps linear warmup steps ({@code --warmup-steps})
     */
    public WorkerTrainerFactory(String model, String dataset, String evalDataset, PlanSettings planSettings,
                                QaloraConfig adapter, Double learningRate, Schedule schedule, long warmupSteps,
                                long totalSteps, int threads, ShippedHadoopConf hadoopConf, String requestedDevice,
                                Precision precision, boolean recompute) {
        this(model, dataset, evalDataset, planSettings, adapter, learningRate, schedule, warmupSteps, totalSteps, threads,
                hadoopConf, requestedDevice, precision, recompute, null);
    }

    /**
     * @param warmStart the published adapter (with its optimizer state) round 0 starts from, or null for a fresh one
     *                  ({@link WarmStart}); the learning-rate schedule then starts at its step
     */
    public WorkerTrainerFactory(String model, String dataset, String evalDataset, PlanSettings planSettings,
                                QaloraConfig adapter, Double learningRate, Schedule schedule, long warmupSteps,
                                long totalSteps, int threads, ShippedHadoopConf hadoopConf, String requestedDevice,
                                Precision precision, boolean recompute, WarmStart.Source warmStart) {
        this.warmStart = warmStart;
        this.requestedDevice = Backends.checkRequested(requestedDevice);
        if (precision == Precision.BF16 && this.requestedDevice.equals("cpu")) {
            throw new IllegalArgumentException("precision bf16 needs a GPU: the CPU backend computes in fp32 only"
                    + " (use --precision fp32 or auto with --device cpu)");
        }
        this.precision = precision;
        this.recompute = recompute;
        this.model = model;
        this.dataset = dataset;
        this.evalDataset = evalDataset;
        this.planSettings = planSettings;
        this.adapter = adapter;
        this.learningRate = learningRate;
        this.schedule = schedule;
        this.warmupSteps = warmupSteps;
        this.totalSteps = totalSteps;
        this.threads = threads;
        this.hadoopConf = hadoopConf;
        this.planHash = plan().hash(); // built on the driver: fails early on a bad dataset or plan settings
        heldOut();                      // likewise for the held-out data
    }

    /** The held-out micro-batches (every record once), or an empty list without held-out data. */
    private List<PlannedBatch> heldOut() {
        if (evalDataset == null) {
            return List.of();
        }
        try {
            return HeldOutBatches.load(evalDataset, hadoopConf.get(), planSettings.maxTokensPerMicroBatch());
        } catch (IOException e) {
            throw new UncheckedIOException("--eval-data: cannot read the prepared held-out dataset " + evalDataset + ": "
                    + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--eval-data: " + e.getMessage(), e);
        }
    }

    private TrainingPlan plan() {
        try {
            return TrainingPlan.load(dataset, hadoopConf.get(), planSettings);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the prepared dataset " + dataset + ": " + e.getMessage(), e);
        }
    }

    /** The job's Hadoop configuration, shipped from the driver: every file this factory reads goes through it. */
    HadoopPaths paths() {
        return new HadoopPaths(hadoopConf.get());
    }

    QaloraConfig adapterConfig() {
        return adapter;
    }

    TrainingConfig trainingConfig() {
        QaloraConfig a = adapterConfig();
        TrainingConfig c = TrainingConfig.defaults(a.pooling(), totalSteps).withRecompute(recompute)
                .withSchedule(schedule, warmupSteps).withScheduleStart(warmStart == null ? 0 : warmStart.step());
        return learningRate == null ? c : c.withLearningRate(learningRate);
    }

    /** The learning rate the run uses (the worker's default for the pooling unless --lr was given). */
    public double effectiveLearningRate() { return trainingConfig().learningRate(); }

    /** Equal identities share a cached trainer: the requested device, precision and recompute are part of it. */
    @Override
    public String identity() {
        return "worker:" + model + "|" + dataset + "|" + planHash + "|eval=" + evalDataset + "|" + adapterConfig() + "|"
                + trainingConfig()
                + "|threads=" + threads + "|device=" + requestedDevice + "|precision="
                + (precision == null ? "auto" : precision.label()) + "|recompute=" + recompute;
    }

    @Override
    public String planHash() { return planHash; }

    /**
     * @param device the task's address: "cpu" when Spark gave it no GPU, else "gpu:N"; the requested device decides
     *               with it which backend opens ({@link Backends#resolve})
     * @throws IllegalStateException when the resolved device is a GPU that cannot be used here (the reason says why)
     */
    @Override
    public SlotTrainer open(String device) {
        String resolved = Backends.resolve(requestedDevice, "cpu".equals(device) ? null : device);
        Backend backend = Backends.open(resolved, precision, threads);
        try {
            LlamaModel base = LlamaModel.load(model, backend, paths());
            return new Trainer(base, adapterConfig(), trainingConfig(), plan(), dataset, heldOut(), evalDataset,
                    hadoopConf);
        } catch (RuntimeException | Error e) {
            backend.close();
            throw e;
        }
    }

    /**
     * The initial adapter from config.json's shapes and the seed, on the driver, without loading a weight (a 7B base
     * is 13 GB the driver need not hold). The checks config.json can answer run here (group size, LoRA on a float
     * base); the checks against the weights themselves run where the model is loaded, in the executors' {@link #open}.
     */
    @Override
    public AdapterTensors initialState(long seed) {
        LlamaConfig config;
        try {
            config = LlamaConfig.read(model, paths());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the config.json of " + model + ": " + e.getMessage(), e);
        }
        AdapterTensors fresh = toTensors(AdapterState.initial(config, adapterConfig(), seed));
        return warmStart == null ? fresh : warmState(fresh, config);
    }

    /**
     * The warm start's state file, checked against the SHA-256 its version's manifest recorded and against the layout
     * a fresh adapter of this run would have (the manifest check of base and shape already passed; this catches a
     * file that does not match what it claims).
     */
    private AdapterTensors warmState(AdapterTensors fresh, LlamaConfig config) {
        Storage storage = new Storage(paths());
        org.apache.hadoop.fs.Path file = storage.path(warmStart.stateFile());
        if (!storage.exists(file)) {
            throw new IllegalStateException("--warm-start: " + file + " is gone (this run's round 0 was not committed "
                    + "yet and starts from it): restore it, or start the run in a new --output");
        }
        String sha = storage.sha256(file);
        if (!sha.equals(warmStart.sha256())) {
            throw new IllegalStateException("--warm-start: " + file + " has SHA-256 " + sha + ", but "
                    + (warmStart.peft() ? "this run resolved its start as " + warmStart.sha256() + " (run.json): it "
                    + "changed since; start the run in a new --output to start from it as it is now"
                    : "its version recorded " + warmStart.sha256() + ": it changed after it was published"));
        }
        AdapterTensors warm;
        if (warmStart.peft()) {
            // A PEFT adapter has weights only: A and B, zero Adam moments, step 0 (WarmStart said so in the log).
            try {
                PeftAdapter peft = PeftAdapter.read(warmStart.version(), paths());
                for (String k : peft.weights().keySet()) {
                    if (!fresh.keys().contains(k)) {
                        throw new IllegalArgumentException("its tensor " + k + " has no place in this run's adapter "
                                + "(another number of layers?)");
                    }
                }
                warm = toTensors(AdapterState.fromWeights(LlamaDims.of(config), adapterConfig(), peft.weights(), 0));
            } catch (IllegalArgumentException e) {
                throw new IllegalStateException("--warm-start: the PEFT adapter " + warmStart.version() + " does not "
                        + "fit this run's adapter on " + model + ": " + e.getMessage(), e);
            }
        } else {
            warm = AdapterStateFile.read(storage, file).state();
        }
        for (String k : fresh.keys()) {
            if (!warm.keys().contains(k) || !java.util.Arrays.equals(warm.tensor(k).shape(), fresh.tensor(k).shape())) {
                throw new IllegalStateException("--warm-start: " + file + " does not fit this run's adapter: tensor " + k
                        + (warm.keys().contains(k) ? " has shape " + java.util.Arrays.toString(warm.tensor(k).shape())
                        + ", this run's is " + java.util.Arrays.toString(fresh.tensor(k).shape()) : " is missing"));
            }
        }
        if (warm.keys().size() != fresh.keys().size()) {
            throw new IllegalStateException("--warm-start: " + file + " has " + warm.keys().size() + " tensors, this "
                    + "run's adapter " + fresh.keys().size());
        }
        return warm;
    }

    /** The opened trainer: base model, plan, held-out batches and shard readers of one executor and device. */
    static final class Trainer implements SlotTrainer {
        final LlamaModel base;
        final QaloraConfig adapter;
        private final LocalTrainer trainer;
        private final TrainingPlan plan;
        private final ShardBatchReader reader;
        private final List<PlannedBatch> heldOut;
        private final ShardBatchReader heldOutReader; // null without held-out data

        Trainer(LlamaModel base, QaloraConfig adapter, TrainingConfig config, TrainingPlan plan, String dataset,
                List<PlannedBatch> heldOut, String evalDataset, ShippedHadoopConf conf) {
            this.base = base;
            this.adapter = adapter;
            this.trainer = new LocalTrainer(base, adapter, config);
            this.plan = plan;
            this.heldOut = heldOut;
            try {
                this.reader = ShardBatchReader.open(dataset, conf.get());
                this.heldOutReader = evalDataset == null ? null : ShardBatchReader.open(evalDataset, conf.get());
            } catch (IOException e) {
                throw new UncheckedIOException("cannot open the prepared dataset " + dataset + " / " + evalDataset
                        + ": " + e.getMessage(), e);
            }
        }

        @Override
        public synchronized EvalOutcome evaluate(AdapterTensors state, int part, int parts) {
            if (heldOutReader == null) {
                throw new IllegalStateException("this run has no held-out data (--eval-data)");
            }
            List<MicroBatch> micro = new ArrayList<>();
            for (PlannedBatch b : HeldOutBatches.part(heldOut, part, parts)) {
                micro.add(read(heldOutReader, b, "held-out part " + part + " of " + parts));
            }
            HeldOutLoss.Result r = HeldOutLoss.evaluate(base, adapter, toState(state).weightMap(), micro);
            return new EvalOutcome(r.lossSum(), r.targetTokens());
        }

        private static MicroBatch read(ShardBatchReader reader, PlannedBatch b, String what) {
            TokenBatch t;
            try {
                t = reader.read(b);
            } catch (IOException e) {
                throw new UncheckedIOException(what + ": cannot read a planned batch: " + e.getMessage(), e);
            }
            return new MicroBatch(t.batchSize(), t.seqLen(), t.inputIds(), t.labels()); // [B, T]
        }

        @Override
        public synchronized SlotOutcome train(SlotAssignment a, AdapterTensors start) {
            List<List<MicroBatch>> steps = new ArrayList<>();
            for (List<PlannedBatch> step : plan.stepsFor(a.round() - 1, a.slot())) {
                List<MicroBatch> micro = new ArrayList<>(step.size());
                for (PlannedBatch b : step) {
                    micro.add(read(reader, b, "round " + a.round() + " slot " + a.slot()));
                }
                steps.add(micro);
            }
            TrainResult r;
            try {
                r = trainer.runConsuming(toState(start), steps, a.seed()); // start is ours (SlotTrainer#train)
            } catch (NonFiniteLossException e) {
                // e.step() is the 1-based global step; the round's local steps are 0-based from the start state
                throw new NonFiniteLossError(a.round(), a.slot(), e.step() - start.step() - 1, e.step(), e.what());
            }
            return new SlotOutcome(toTensors(r.state()), r.targetTokens(), r.lossSum(), r.steps(), r.stepLosses());
        }

        /**
         * The worker's state holding {@code t}'s arrays themselves: {@code t} was handed over ({@link #train}) or is
         * only read ({@link #evaluate}, whose adapter uploads copies).
         */
        private AdapterState toState(AdapterTensors t) {
            Map<String, float[]> weights = new LinkedHashMap<>(), adamM = new LinkedHashMap<>(), adamV = new LinkedHashMap<>();
            for (String k : t.keys()) {
                AdapterTensors.Tensor tensor = t.tensor(k);
                weights.put(k, tensor.weights());
                adamM.put(k, tensor.adamM());
                adamV.put(k, tensor.adamV());
            }
            return AdapterState.adopt(base.dims(), adapter, weights, adamM, adamV, t.step());
        }
    }

    /**
     * {@code s}'s arrays themselves, not copies: every state given here is fresh (a trainer's result, a new or warm
     * adapter) and dropped by the caller, and a copy would double a slot's result on the executor until it is written.
     */
    static AdapterTensors toTensors(AdapterState s) {
        Map<String, AdapterTensors.Tensor> out = new LinkedHashMap<>();
        for (String k : s.keys()) {
            out.put(k, new AdapterTensors.Tensor(s.shape(k), s.weights(k), s.adamM(k), s.adamV(k)));
        }
        return new AdapterTensors(out, s.step());
    }
}
