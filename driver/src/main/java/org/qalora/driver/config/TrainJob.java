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

/**
 * Everything a {@code train} run is configured by, from flags, a YAML job file or the embedded defaults.
 * A null {@code model} means "the bundled demo model" and a null {@code lr} "the worker's default for the
 * pooling". The {@link #configHash()} covers everything that changes the result (not where the run executes,
 * nor where it writes), and is what a rerun on the same output must match to resume.
 *
 * @param model            HF or GPTQ checkpoint directory on any Hadoop path; null: generate the demo model
 * @param data             raw records (JSONL/JSON/Parquet) or a prepared dataset directory (with manifest.json)
 * @param tokenizer        tokenizer.json; null: the model's own
 * @param output           run directory: checkpoints, prepared data, quantized base, published models
 * @param rounds           synchronous rounds of training
 * @param stepsPerRound    K local optimizer steps per slot per round
 * @param slots            N parallel slots (Spark tasks, one per GPU)
 * @param microBatches     micro-batches per optimizer step (gradient accumulation)
 * @param microBatchTokens token budget B*T of one micro-batch, padding included (records are grouped by length)
 * @param master           Spark master (ignored when spark-submit already set one)
 * @param seed             the one seed every random choice derives from
 * @param bits             quantization bits, when the model must be quantized first
 * @param groupSize        quantization group size = QA-LoRA pooling group
 * @param rank             LoRA rank r
 * @param alpha            lora_alpha
 * @param lr               peak learning rate; null: the worker's default for the pooling
 * @param pooling          QA-LoRA pooling convention: mean, sum or peft
 * @param dropout          dropout on the adapter's pooled input (QA-LoRA's recipe: 0.05)
 * @param template         prompt template for raw data: "auto" (Alpaca prompts for Alpaca records, FLAN inputs
 *                         verbatim) or a template file
 * @param keepRounds       committed rounds kept in the checkpoint directory
 */
public record TrainJob(String model, List<String> data, String tokenizer, String output, int rounds,
                       int stepsPerRound, int slots, int microBatches, int microBatchTokens, String master, long seed, int bits, int groupSize, int rank, double alpha, Double lr,
                       String pooling, double dropout, String template, int keepRounds) {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);

    public TrainJob {
        data = data == null ? List.of() : List.copyOf(data);
        List<String> problems = new ArrayList<>();
        positive(problems, "rounds", rounds);
        positive(problems, "steps-per-round", stepsPerRound);
        positive(problems, "slots", slots);
        positive(problems, "micro-batches", microBatches);
        positive(problems, "micro-batch-tokens", microBatchTokens);
        positive(problems, "rank", rank);
        positive(problems, "group-size", groupSize);
        positive(problems, "keep-rounds", keepRounds);
        if (bits < 2 || bits > 8) {
            problems.add("bits must be 2..8, got " + bits);
        }
        if (!(alpha > 0)) {
            problems.add("alpha must be > 0, got " + alpha);
        }
        if (lr != null && !(lr > 0 && lr < 1)) {
            problems.add("lr must be in (0, 1), got " + lr);
        }
        if (!List.of("mean", "sum", "peft").contains(pooling)) {
            problems.add("pooling must be mean, sum or peft, got " + pooling);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            problems.add("dropout must be in [0, 1), got " + dropout);
        }
        if (output == null || output.isBlank()) {
            problems.add("output is required");
        }
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException("bad train settings: " + String.join("; ", problems));
        }
    }

    private static void positive(List<String> problems, String name, long v) {
        if (v < 1) {
            problems.add(name + " must be >= 1, got " + v);
        }
    }

    /** The settings that decide the result, by flag name (stable order): what the config hash covers. */
    public Map<String, Object> resultSettings() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", model == null ? "<demo>" : model);
        m.put("data", data);
        m.put("tokenizer", tokenizer == null ? "<model>" : tokenizer);
        m.put("rounds", rounds);
        m.put("steps-per-round", stepsPerRound);
        m.put("slots", slots);
        m.put("micro-batches", microBatches);
        m.put("micro-batch-tokens", microBatchTokens);
        m.put("seed", seed);
        m.put("bits", bits);
        m.put("group-size", groupSize);
        m.put("rank", rank);
        m.put("alpha", alpha);
        m.put("lr", lr == null ? "<default>" : lr);
        m.put("pooling", pooling);
        m.put("dropout", dropout);
        m.put("template", template);
        return m;
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

    /** Total optimizer steps of the run (drives the learning-rate schedule). */
    public long totalSteps() { return (long) rounds * stepsPerRound; }
}
