package org.qalora.driver.gptq;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.plan.PlannedBatch;
import org.qalora.datasets.plan.RecordLengths;
import org.qalora.datasets.plan.ShardBatchReader;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.util.SplitMix64;

/**
 * Draws GPTQ's calibration sequences, seeded: {@code samples} windows of {@code tokens} token ids, from the
 * prepared training data (records in a seeded random order, their input ids concatenated, as the reference cuts
 * random windows of C4) or from a text file the user gives ({@code --calibration}, tokenized whole with the
 * model's tokenizer). What the source holds caps both: a window is at most the whole token stream long, and there
 * are at most as many windows as fit in it without overlap. Token ids only: no weights pass the driver.
 */
public final class CalibrationSampler {
    /** Fewer calibration tokens than this is refused: GPTQ's Hessians would say next to nothing. */
    public static final int MIN_TOKENS = 64;

    /** @param ids {@code [samples][tokens]}; @param source what they were drawn from, for the log */
    public record Drawn(int[][] ids, String source) {
        public int samples() { return ids.length; }
        public int tokens() { return ids[0].length; }
    }

    private CalibrationSampler() {}

    /** From a prepared dataset: whole records in a seeded order until {@code samples * tokens} ids are collected. */
    public static Drawn fromDataset(String datasetDir, Configuration conf, int samples, int tokens, long seed)
            throws IOException {
        DatasetManifest manifest = DatasetManifest.read(datasetDir, conf);
        RecordLengths lengths = RecordLengths.read(manifest, datasetDir, conf);
        long[] order = new long[lengths.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        rng(seed, 1).shuffle(order);
        long wanted = (long) samples * tokens;
        int take = 0;
        long collected = 0;
        while (take < order.length && collected < wanted) {
            collected += lengths.numTokens()[(int) order[take++]];
        }
        // Read the chosen records in index order (a shard is read once), then concatenate them in the drawn order.
        Map<Long, int[]> records = new TreeMap<>();
        for (int i = 0; i < take; i++) {
            records.put(order[i], null);
        }
        ShardBatchReader reader = new ShardBatchReader(datasetDir, conf, manifest, 2);
        for (Map.Entry<Long, int[]> r : records.entrySet()) {
            int length = lengths.numTokens()[Math.toIntExact(r.getKey())];
            var batch = reader.read(new PlannedBatch(1, length, new long[] {r.getKey()}, 0));
            r.setValue(Arrays.copyOf(batch.inputIds(), length));
        }
        int[] stream = new int[Math.toIntExact(collected)];
        int at = 0;
        for (int i = 0; i < take; i++) {
            int[] ids = records.get(order[i]);
            System.arraycopy(ids, 0, stream, at, ids.length);
            at += ids.length;
        }
        return windows(stream, samples, tokens, seed, "the training data " + datasetDir + " (" + take + " of "
                + order.length + " records)", "the training data holds");
    }

    /** From a UTF-8 text file, tokenized whole (no special tokens). */
    public static Drawn fromText(String file, String tokenizer, HadoopPaths paths, int samples, int tokens, long seed,
                                 int vocabSize) throws IOException {
        if (!paths.exists(file)) {
            throw new IllegalArgumentException("--calibration " + file + " does not exist (or is not readable): give a"
                    + " UTF-8 text file to draw GPTQ's calibration windows from");
        }
        String text = new String(paths.readAllBytes(file), StandardCharsets.UTF_8);
        // Shared per JVM (the prepare job's tasks use the same instance in local mode): not closed here.
        int[] stream = TextTokenizer.open(tokenizer, paths.configuration()).encode(text, false);
        for (int i = 0; i < stream.length; i++) {
            if (stream[i] < 0 || stream[i] >= vocabSize) {
                throw new IllegalArgumentException("--calibration " + file + ": token " + i + " has id " + stream[i]
                        + ", outside the model's vocabulary [0, " + vocabSize + "): the tokenizer does not fit the model");
            }
        }
        return windows(stream, samples, tokens, seed, "--calibration " + file, "--calibration " + file + " holds");
    }

    /**
     * Cuts {@code stream} into non-overlapping windows of {@code min(tokens, stream length)} ids and picks
     * {@code min(samples, windows)} of them in a seeded order.
     */
    static Drawn windows(int[] stream, int samples, int tokens, long seed, String source, String holds) {
        if (stream.length < MIN_TOKENS) {
            throw new IllegalArgumentException("GPTQ calibration needs at least " + MIN_TOKENS + " tokens, but " + holds
                    + " only " + stream.length + ": give more text (--calibration FILE), or use --quantize rtn");
        }
        if (samples <= 0 || tokens <= 0) {
            throw new IllegalArgumentException("--calibration-samples and --calibration-tokens must be positive, got "
                    + samples + " and " + tokens);
        }
        int length = Math.min(tokens, stream.length);
        int available = stream.length / length;
        long[] windowOrder = new long[available];
        for (int i = 0; i < available; i++) {
            windowOrder[i] = i;
        }
        rng(seed, 2).shuffle(windowOrder);
        int n = Math.min(samples, available);
        int[][] ids = new int[n][];
        for (int s = 0; s < n; s++) {
            int from = Math.toIntExact(windowOrder[s] * length);
            ids[s] = Arrays.copyOfRange(stream, from, from + length);
        }
        return new Drawn(ids, source);
    }

    /** Writes {@code input_ids} I32 {@code [samples, tokens]}, as the {@code quantize} command's calibration file. */
    public static void write(Drawn drawn, String location, HadoopPaths paths) throws IOException {
        int n = drawn.samples();
        int t = drawn.tokens();
        int[] flat = new int[n * t];
        for (int s = 0; s < n; s++) {
            System.arraycopy(drawn.ids()[s], 0, flat, s * t, t);
        }
        new SafetensorsWriter().addInts(org.qalora.worker.quantize.CalibrationData.TENSOR, flat, n, t).write(location, paths);
    }

    private static SplitMix64 rng(long seed, long stream) {
        return new SplitMix64(new SplitMix64(seed ^ (stream * 0xA24BAED4963EE407L)).nextLong());
    }

    /** What the source's size capped, for the log. */
    public static List<String> describe(Drawn d, int samples, int tokens) {
        List<String> notes = new ArrayList<>();
        if (d.samples() < samples) {
            notes.add("only " + d.samples() + " of the " + samples + " requested sequences fit");
        }
        if (d.tokens() < tokens) {
            notes.add("sequences cut to " + d.tokens() + " tokens (the source holds fewer than " + tokens + ")");
        }
        return notes;
    }
}
