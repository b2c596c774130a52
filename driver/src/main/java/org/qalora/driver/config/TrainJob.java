package org.qalora.driver.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.quant.quantizer.GptqSolve;
import org.qalora.quant.safetensors.ShardSize;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.train.Schedule;

/**
 * Everything a {@code train} run is configured by, from flags, a YAML job file or the embedded defaults.
 * A null {@code model} means "the bundled demo model" and a null {@code lr} "the worker's default for the
 * pooling". The {@link #configHash()} covers everything that changes the result (not where the run executes,
 * nor where it writes), and is what a rerun on the same output must match to resume. The device, precision and
 * recompute settings are covered too: a GPU sums in another order than the CPU and bf16 rounds differently, so a
 * run does not change them halfway (recompute is included so that a resume trains exactly as the run began).
 * Each component is a {@link TrainSetting} of the same name in camel case; {@link TrainJobLoader} builds the record
 * through its canonical constructor from the declaration, so a new setting is a constant there and a component here.
 *
 * @param model            HF or GPTQ checkpoint directory on any Hadoop path; null: generate the demo model
 * @param data             raw records (JSONL/JSON/Parquet) or a prepared dataset directory (with manifest.json)
 * @param evalData         held-out records (same forms as data), or empty for none: their loss under each evaluated
 *                         round's averaged adapter goes to metrics.jsonl and the progress line
 * @param evalEvery        evaluate the held-out loss after every k-th round (and after the last)
 * @param tokenizer        tokenizer.json; null: the model's own
 * @param output           run directory: checkpoints, prepared data, quantized base, published models
 * @param rounds           synchronous rounds of training
 * @param stepsPerRound    K local optimizer steps per slot per round
 * @param slots            N parallel slots (Spark tasks, one per GPU)
 * @param batchSize        sequences (records) per optimizer step, per slot
 * @param groupByLength    0: off (a step is batchSize records of the shuffled data); else the mega-batch size of
 *                         HF-style length grouping (must exceed batchSize): steps of similar-length records
 * @param microBatchTokens token budget B*T of one micro-batch, padding included: a step's sequences are split into
 *                         as many micro-batches as this needs (memory only; the step's gradient is the same)
 * @param master           Spark master (ignored when spark-submit already set one)
 * @param seed             the one seed every random choice derives from
 * @param method           qalora (QA-LoRA on a group-quantized base) or lora (plain LoRA on the float base, merged into
 *                         float weights: the baseline); normalised to lower case
 * @param bits             quantization bits, when the model must be quantized first (qalora only)
 * @param groupSize        quantization group size = QA-LoRA pooling group (qalora only)
 * @param rank             LoRA rank r
 * @param alpha            lora_alpha
 * @param lr               peak learning rate; null: the worker's default for the pooling
 * @param pooling          QA-LoRA pooling convention: mean, sum or peft (qalora only)
 * @param dropout          dropout on the adapter's pooled input (QA-LoRA's recipe: 0.05)
 * @param template         prompt template for raw data: "auto" (Alpaca prompts for Alpaca records, FLAN inputs
 *                         verbatim) or a template file
 * @param keepRounds       committed rounds kept in the checkpoint directory
 * @param device           requested device: auto (the Spark task's GPU when it has one, else the CPU), cpu, gpu
 *                         (the task's GPU, or GPU 0) or gpu:N ({@link Backends#resolve}); normalised to lower case
 * @param precision        auto (bf16 on a GPU, fp32 on the CPU), fp32 or bf16; normalised to lower case
 * @param recompute        per-layer activation recompute in backward (less memory, more compute)
 * @param lrSchedule       constant, linear or cosine decay of the learning rate over the run's steps (the worker's
 *                         {@link Schedule}); normalised to lower case
 * @param warmupSteps      linear warmup from 0 over this many steps (0: none)
 * @param skipBadRecords   raw data: skip and count bad records instead of stopping at the first
 * @param sourceMaxLen     raw data: source (prompt) tokens kept per record, BOS included
 * @param targetMaxLen     raw data: target (response) tokens kept per record, EOS included
 * @param maxShardSize     largest weights file of the quantized base and the merged model, as HF spells it
 *                         ({@code 5GB}, {@code 500MB}): the file layout only, so not in the config hash (the
 *                         published manifest records it)
 * @param warmStart        null: start from a fresh adapter; {@code LATEST}: the version the output's LATEST names (a
 *                         fresh adapter when there is none yet); else a published version directory, its
 *                         {@code adapter/} directory, or a run directory (its LATEST). The pipeline replaces it by
 *                         the resolved version ({@link org.qalora.driver.pipeline.WarmStart}), which the config hash
 *                         covers: two runs from different starting adapters never share checkpoints
 * @param keepVersions     0: keep every published version; N: after LATEST flipped, delete all but the N newest
 *                         (never the one LATEST names). Not in the config hash: it changes no result
 * @param quantize         how QA-LoRA quantizes a float base: gptq (calibrated, the paper's) or rtn; normalised to
 *                         lower case
 * @param calibration      gptq: a UTF-8 text file to draw calibration windows from, or null for the training data
 * @param calibrationSamples gptq: calibration sequences (capped by what the source holds)
 * @param calibrationTokens  gptq: tokens per calibration sequence (capped by what the source holds)
 * @param gptqSolve        gptq: auto, cpu or gpu, where the inverse-Hessian solves run; normalised to lower case;
 *                         auto is resolved once by the pipeline, never per task
 * @param averagingParts   key ranges (Spark tasks, part files) of each round's averaging; 0: one per 64 MiB of state,
 *                         at least one per slot ({@link org.qalora.driver.rounds.KeyRanges#count}). Not in the config
 *                         hash: every element's average is the same float64 chain whatever the split, so it changes
 *                         no bit of the result, and a resumed run may use another count
 * @param averagingTaskCpus CPUs per averaging task ({@link org.qalora.driver.rounds.AveragingStageResources}); 0: as
 *                         a training task. Not in the config hash: it decides where tasks run, not what they compute
 * @param updateReplication copies of each slot's update file (transient: read once by the averaging, deleted by the
 *                         next commit); at most the file system's default; 0: the default. Not in the config hash: it
 *                         changes no bit of the result
 */
public record TrainJob(String model, List<String> data, List<String> evalData, int evalEvery, String tokenizer, String output, int rounds,
                       int stepsPerRound, int slots, int batchSize, int groupByLength, int microBatchTokens, String master, long seed, String method, int bits, int groupSize, int rank, double alpha, Double lr,
                       String pooling, double dropout, String template, int keepRounds, String device,
                       String precision, boolean recompute, String lrSchedule, int warmupSteps,
                       boolean skipBadRecords, int sourceMaxLen, int targetMaxLen,
                       String maxShardSize, String warmStart, int keepVersions, String quantize,
                       String calibration, int calibrationSamples, int calibrationTokens, String gptqSolve, int averagingParts,
                       int averagingTaskCpus, int updateReplication) {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);

    public TrainJob {
        data = data == null ? List.of() : List.copyOf(data);
        evalData = evalData == null ? List.of() : List.copyOf(evalData);
        List<String> problems = new ArrayList<>();
        positive(problems, "rounds", rounds);
        positive(problems, "eval-every", evalEvery);
        positive(problems, "steps-per-round", stepsPerRound);
        positive(problems, "slots", slots);
        positive(problems, "batch-size", batchSize);
        if (groupByLength < 0 || groupByLength > 0 && groupByLength <= batchSize) {
            problems.add("group-by-length must be off or a mega-batch size larger than batch-size " + batchSize
                    + " (a mega-batch of one step's records groups nothing; HF uses 50 x batch size), got "
                    + groupByLength);
        }
        positive(problems, "micro-batch-tokens", microBatchTokens);
        positive(problems, "rank", rank);
        positive(problems, "group-size", groupSize);
        positive(problems, "keep-rounds", keepRounds);
        method = method == null ? "qalora" : method.trim().toLowerCase(java.util.Locale.ROOT);
        if (!List.of("qalora", "lora").contains(method)) {
            problems.add("method must be qalora (QA-LoRA on a quantized base) or lora (plain LoRA on the float base), got "
                    + method);
        }
        if (!List.of(2, 3, 4, 8).contains(bits)) {
            problems.add("--bits must be 2, 3, 4 or 8 (the widths the packed kernels implement), got " + bits);
        }
        if (!(alpha > 0)) {
            problems.add("alpha must be > 0, got " + alpha);
        }
        if (lr != null && !(lr > 0 && lr < 1)) {
            problems.add("lr must be in (0, 1), got " + lr);
        }
        if (pooling == null || !List.of("mean", "sum", "peft").contains(pooling)) {   // List.of().contains(null) throws
            problems.add("pooling must be mean, sum or peft, got " + pooling);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            problems.add("dropout must be in [0, 1), got " + dropout);
        }
        if (output == null || output.isBlank()) {
            problems.add("output is required");
        }
        try {
            device = Backends.checkRequested(device);
        } catch (IllegalArgumentException e) {
            problems.add(e.getMessage());
        }
        precision = precision == null ? "auto" : precision.trim().toLowerCase(java.util.Locale.ROOT);
        try {
            if (!precision.equals("auto") && Precision.parse(precision, "precision") == Precision.BF16
                    && "cpu".equals(device)) {
                problems.add("precision bf16 needs a GPU: the CPU backend computes in fp32 only (use --precision fp32"
                        + " or auto with --device cpu)");
            }
        } catch (IllegalArgumentException e) {
            problems.add(e.getMessage());
        }
        lrSchedule = lrSchedule == null ? "constant" : lrSchedule.trim().toLowerCase(java.util.Locale.ROOT);
        if (!List.of("constant", "linear", "cosine").contains(lrSchedule)) {
            problems.add("--lr-schedule must be constant, linear or cosine, got " + lrSchedule);
        }
        if (warmupSteps < 0) {
            problems.add("--warmup-steps must be >= 0, got " + warmupSteps);
        }
        positive(problems, "source-max-len", sourceMaxLen);
        positive(problems, "target-max-len", targetMaxLen);
        maxShardSize = maxShardSize == null ? ShardSize.DEFAULT : maxShardSize.trim();
        try {
            ShardSize.parse(maxShardSize, "max-shard-size");
        } catch (IllegalArgumentException e) {
            problems.add(e.getMessage());
        }
        warmStart = warmStart == null || warmStart.isBlank() ? null : warmStart.trim();
        if (keepVersions < 0) {
            problems.add("--keep-versions must be >= 0 (0 keeps every published version), got " + keepVersions);
        }
        quantize = quantize == null ? "gptq" : quantize.trim().toLowerCase(java.util.Locale.ROOT);
        if (!List.of("gptq", "rtn").contains(quantize)) {
            problems.add("--quantize must be gptq (calibrated, as the paper) or rtn (round to nearest, no data), got "
                    + quantize);
        }
        positive(problems, "calibration-samples", calibrationSamples);
        positive(problems, "calibration-tokens", calibrationTokens);
        if (averagingParts < 0) {
            problems.add("--averaging-parts must be >= 0 (0: one per 64 MiB of adapter state, at least one per slot),"
                    + " got " + averagingParts);
        }
        if (averagingTaskCpus < 0) {
            problems.add("--averaging-task-cpus must be >= 0 (0: as many as a training task takes), got "
                    + averagingTaskCpus);
        }
        if (updateReplication < 0) {
            problems.add("--update-replication must be >= 0 (0: the file system's default), got " + updateReplication);
        }
        if (calibration != null && quantize.equals("rtn")) {
            problems.add("--calibration is only used by --quantize gptq (rtn needs no data)");
        }
        try {
            gptqSolve = GptqSolve.checkRequested(gptqSolve, "--gptq-solve");
        } catch (IllegalArgumentException e) {
            problems.add(e.getMessage());
        }
        if (!problems.isEmpty()) {
            throw new InvalidSettingsException("bad train settings", problems);
        }
    }

    private static void positive(List<String> problems, String name, long v) {
        if (v < 1) {
            problems.add("--" + name + " must be >= 1, got " + v);
        }
    }

    /**
     * The settings that decide the result, by flag name (stable order): what the config hash covers. The number of
     * rounds is left out under a constant schedule: round r trains the same steps with the same learning rates
     * whatever the total, so a finished run can be extended with a larger {@code --rounds} and ends as a run of that
     * many rounds from the start would. Linear and cosine decay set every step's rate from the total, so there it is
     * part of the result.
     */
    public Map<String, Object> resultSettings() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", model == null ? "<demo>" : model);
        m.put("data", data);
        m.put("eval-data", evalData);
        m.put("eval-every", evalEvery);
        m.put("tokenizer", tokenizer == null ? "<model>" : tokenizer);
        if (!lrSchedule.equals("constant")) {
            m.put("rounds", rounds);
        }
        m.put("steps-per-round", stepsPerRound);
        m.put("slots", slots);
        m.put("batch-size", batchSize);
        m.put("group-by-length", groupByLength == 0 ? "off" : groupByLength);
        m.put("micro-batch-tokens", microBatchTokens);
        m.put("seed", seed);
        m.put("method", method);
        if (qalora()) { // plain LoRA neither quantizes nor pools: these do not change its result
            m.put("bits", bits);
            m.put("group-size", groupSize);
            m.put("quantize", quantize);
            if (gptq()) {
                m.put("calibration", calibration == null ? "<training data>" : calibration);
                if (calibration == null) { // what the windows are drawn from: the training data as tokenized
                    m.put("calibration-data", List.of(data, tokenizer == null ? "<model>" : tokenizer, template,
                            sourceMaxLen, targetMaxLen));
                }
                m.put("calibration-samples", calibrationSamples);
                m.put("calibration-tokens", calibrationTokens);
                // Only a forced gpu is hashed: cpu and auto (the default since it ran on a GPU; cpu before) keep the
                // hash of runs made before the setting existed, as --device auto is hashed as asked, not as resolved.
                // The solve only makes the run's base-quantized model, which a resumed run reuses as it is.
                if (gptqSolve.equals("gpu")) {
                    m.put("gptq-solve", gptqSolve);
                }
            }
        }
        m.put("rank", rank);
        m.put("alpha", alpha);
        m.put("lr", lr == null ? "<default>" : lr);
        m.put("lr-schedule", lrSchedule);
        m.put("warmup-steps", warmupSteps);
        if (qalora()) {
            m.put("pooling", pooling);
        }
        m.put("dropout", dropout);
        m.put("template", template);
        m.put("skip-bad-records", skipBadRecords);
        m.put("source-max-len", sourceMaxLen);
        m.put("target-max-len", targetMaxLen);
        m.put("device", device);
        m.put("precision", precision);
        m.put("recompute", recompute);
        if (warmStart != null) {
            m.put("warm-start", warmStart);
        }
        return m;
    }

    /** True when the number of rounds is part of the result (a decaying schedule): such a run cannot be extended. */
    public boolean roundsFixed() { return !lrSchedule.equals("constant"); }

    /** The worker's schedule. */
    public Schedule schedule() { return Schedule.parse(lrSchedule); }

    /**
     * The same job with every path setting passed through {@code normalise} (the pipeline makes them absolute URIs,
     * so that run.json records what was read, whatever the working directory of the command that read it).
     */
    public TrainJob withPaths(java.util.function.UnaryOperator<String> normalise) {
        return new TrainJob(model == null ? null : normalise.apply(model), data.stream().map(normalise).toList(),
                evalData.stream().map(normalise).toList(), evalEvery,
                tokenizer == null ? null : normalise.apply(tokenizer), normalise.apply(output), rounds, stepsPerRound,
                slots, batchSize, groupByLength, microBatchTokens, master, seed, method, bits, groupSize, rank, alpha, lr,
                pooling, dropout, template == null || template.equals("auto") ? template : normalise.apply(template),
                keepRounds, device, precision, recompute, lrSchedule, warmupSteps, skipBadRecords, sourceMaxLen,
                targetMaxLen, maxShardSize, warmStart == null || warmStart.equals(WARM_START_LATEST) ? warmStart
                        : normalise.apply(warmStart), keepVersions, quantize,
                calibration == null ? null : normalise.apply(calibration), calibrationSamples, calibrationTokens,
                gptqSolve, averagingParts, averagingTaskCpus, updateReplication);
    }

    /** {@code --warm-start LATEST}: the version the output's own LATEST names. */
    public static final String WARM_START_LATEST = "LATEST";

    /** The same job warm-starting from {@code resolved} (null: from a fresh adapter). */
    public TrainJob withWarmStart(String resolved) {
        return new TrainJob(model, data, evalData, evalEvery, tokenizer, output, rounds, stepsPerRound, slots, batchSize,
                groupByLength, microBatchTokens, master, seed, method, bits, groupSize, rank, alpha, lr, pooling,
                dropout, template, keepRounds, device, precision, recompute, lrSchedule, warmupSteps, skipBadRecords,
                sourceMaxLen, targetMaxLen, maxShardSize, resolved, keepVersions, quantize, calibration,
                calibrationSamples, calibrationTokens, gptqSolve, averagingParts, averagingTaskCpus, updateReplication);
    }

    /** The same job reading {@code data} (the expanded globs of --data) and {@code evalData}. */
    public TrainJob withData(List<String> newData, List<String> newEvalData) {
        return new TrainJob(model, newData, newEvalData, evalEvery, tokenizer, output, rounds, stepsPerRound, slots,
                batchSize, groupByLength, microBatchTokens, master, seed, method, bits, groupSize, rank, alpha, lr,
                pooling, dropout, template, keepRounds, device, precision, recompute, lrSchedule, warmupSteps,
                skipBadRecords, sourceMaxLen, targetMaxLen, maxShardSize, warmStart, keepVersions, quantize,
                calibration, calibrationSamples, calibrationTokens, gptqSolve, averagingParts, averagingTaskCpus,
                updateReplication);
    }

    /** QA-LoRA quantizes a float base with GPTQ (else RTN). */
    public boolean gptq() { return quantize.equals("gptq"); }

    /** True for QA-LoRA, false for the plain LoRA baseline. */
    public boolean qalora() { return method.equals("qalora"); }

    /** The requested precision, or null for auto (the resolved device's default). */
    public Precision backendPrecision() {
        return precision.equals("auto") ? null : Precision.parse(precision, "precision");
    }

    /** True when a GPU was asked for explicitly ({@code gpu} or {@code gpu:N}). */
    public boolean gpuRequested() {
        return !device.equals("auto") && Backends.gpuOrdinal(device) >= 0;
    }

    /** SHA-256 of the canonical JSON of {@link #resultSettings()}. */
    public String configHash() {
        try {
            byte[] json = JSON.writeValueAsString(resultSettings()).getBytes(StandardCharsets.UTF_8);
            return HexFormat.of().formatHex(Storage.sha256().digest(json));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The held-out loss schedule of the rounds: every {@code evalEvery} rounds, or 0 without held-out data. */
    public int roundsBetweenEvals() { return evalData.isEmpty() ? 0 : evalEvery; }

    /** Total optimizer steps of the run (drives the learning-rate schedule). */
    public long totalSteps() { return (long) rounds * stepsPerRound; }
}
