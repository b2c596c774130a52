package org.qalora.datasets.plan;

import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.quant.util.SplitMix64;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which records every slot trains on in every step of every round, decided from (seed, dataset, settings) alone,
 * so a resumed or re-run job sees exactly the same batches.
 *
 * <p>Per epoch e:
 * <ol>
 *   <li>shuffle all record indices with a generator seeded from (seed, e);</li>
 *   <li>with length grouping (mega-batch size M > 0): cut the shuffled order into mega-batches of M records and sort
 *       each by length, longest first (HF's LengthGroupedSampler): a step then holds records of similar length,
 *       which pads less but, on data whose length tracks the task, shows each step one or two kinds of record.</li>
 * </ol>
 * The epochs form one record stream (each epoch is exactly n records long, so stream position p is record
 * {@code order(p / n)[p % n]}). Step s is stream positions {@code [s*S, (s+1)*S)} with S the batch size (a step may
 * straddle two epochs, rarely holding one record twice; no record is dropped). Round r takes the next {@code slots * K} steps, which go to slots
 * longest-processing-time first by target tokens: largest first, each to the slot with the fewest target tokens so
 * far among those that still have room, every slot getting exactly K; each slot's steps keep their stream order.
 * A step's records are split into micro-batches by {@link MicroBatchPacker} under the token budget.
 */
public final class TrainingPlan {

    private static final String VERSION = "qalora-plan-v2";
    /** Epoch orders kept in memory; older ones are dropped and rebuilt on demand (a pure function of the seed). */
    private static final int CACHED_EPOCHS = 3;

    private final PlanSettings settings;
    private final RecordLengths lengths;
    private final String hash;
    private final Map<Integer, long[]> epochs = new LinkedHashMap<>(8, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, long[]> eldest) {
            return size() > CACHED_EPOCHS;
        }
    };

    private TrainingPlan(PlanSettings settings, RecordLengths lengths, String hash) {
        this.settings = settings;
        this.lengths = lengths;
        this.hash = hash;
    }

    /** Builds the plan for a prepared dataset directory (reads manifest.json and lengths.bin only). */
    public static TrainingPlan load(String datasetDir, Configuration conf, PlanSettings settings) throws IOException {
        DatasetManifest m = DatasetManifest.read(datasetDir, conf);
        return build(m, RecordLengths.read(m, datasetDir, conf), settings);
    }

    public static TrainingPlan build(DatasetManifest manifest, RecordLengths lengths, PlanSettings settings) {
        if (lengths.size() != manifest.records()) {
            throw new IllegalArgumentException("lengths hold " + lengths.size() + " records but the manifest says "
                    + manifest.records());
        }
        if (lengths.size() < settings.batchSize()) {
            throw new IllegalArgumentException("the dataset has " + lengths.size() + " records but batch-size is "
                    + settings.batchSize() + ": a step takes that many distinct records; lower --batch-size to at most "
                    + lengths.size() + " or add data");
        }
        for (int i = 0; i < lengths.size(); i++) {
            if (lengths.numTokens()[i] > settings.maxTokensPerMicroBatch()) {
                throw new IllegalArgumentException("record " + i + " has " + lengths.numTokens()[i]
                        + " tokens, more than --micro-batch-tokens " + settings.maxTokensPerMicroBatch()
                        + "; raise --micro-batch-tokens or prepare with smaller --source-max-len/--target-max-len");
            }
        }
        String hash = sha256(VERSION + "\n" + manifest.datasetHash() + "\n" + manifest.lengthsSha256() + "\n"
                + settings.seed() + "," + settings.slots() + "," + settings.stepsPerRound() + ","
                + settings.batchSize() + "," + settings.groupByLength() + "," + settings.maxTokensPerMicroBatch());
        return new TrainingPlan(settings, lengths, hash);
    }

    /** Stable across JVMs: SHA-256 of the plan version, dataset hash, lengths hash and settings. */
    public String hash() {
        return hash;
    }

    public PlanSettings settings() {
        return settings;
    }

    /** K steps for one slot in one round, each step its micro-batches (together exactly batchSize records). */
    public synchronized List<List<PlannedBatch>> stepsFor(int round, int slot) {
        if (slot < 0 || slot >= settings.slots()) {
            throw new IllegalArgumentException("slot " + slot + " is not in [0, " + settings.slots() + ")");
        }
        List<List<PlannedBatch>> steps = new ArrayList<>(settings.stepsPerRound());
        for (long[] step : assign(round).get(slot)) {
            steps.add(MicroBatchPacker.pack(step, lengths, settings.maxTokensPerMicroBatch()));
        }
        return List.copyOf(steps);
    }

    /** Target tokens each slot gets in a round: [slots]. */
    public synchronized long[] targetTokensPerSlot(int round) {
        List<List<long[]>> a = assign(round);
        long[] out = new long[a.size()];
        for (int s = 0; s < out.length; s++) {
            for (long[] step : a.get(s)) {
                out[s] += targetTokens(step);
            }
        }
        return out;
    }

    /** max / mean of the slots' target tokens in a round: 1.0 is perfect balance. */
    public double imbalance(int round) {
        long[] t = targetTokensPerSlot(round);
        double mean = Arrays.stream(t).average().orElse(0);
        return mean == 0 ? 1.0 : Arrays.stream(t).max().orElse(0) / mean;
    }

    /** The epoch the round's first record belongs to. */
    public int epochOf(int round) {
        return Math.toIntExact((long) round * settings.recordsPerRound() / lengths.size());
    }

    /** Rounds needed so every record of epochs [0, epochs) is trained on once per epoch. */
    public int roundsFor(int epochs) {
        long records = (long) epochs * lengths.size();
        return Math.toIntExact((records + settings.recordsPerRound() - 1) / settings.recordsPerRound());
    }

    /** The record order of one epoch (shuffled, then length-grouped when that is on): a permutation of [0, n). */
    public synchronized long[] epochOrder(int epoch) {
        return order(epoch).clone();
    }

    /** The records of global step {@code step} (0-based over the whole run, all slots), in stream order. */
    public synchronized long[] stepRecords(long step) {
        int n = lengths.size();
        int b = settings.batchSize();
        long[] out = new long[b];
        for (int i = 0; i < b; i++) {
            long pos = step * b + i;
            out[i] = order(Math.toIntExact(pos / n))[(int) (pos % n)];
        }
        return out;
    }

    // --- internals ---

    /** Round r's steps per slot: [slots][K] record arrays. */
    private List<List<long[]>> assign(int round) {
        if (round < 0) {
            throw new IllegalArgumentException("round must be >= 0, got " + round);
        }
        int perRound = settings.stepsPerRoundAllSlots();
        long first = (long) round * perRound;
        List<long[]> steps = new ArrayList<>(perRound);
        long[] targets = new long[perRound];                 // [slots*K] target tokens of each step of the round
        for (int i = 0; i < perRound; i++) {
            steps.add(stepRecords(first + i));
            targets[i] = targetTokens(steps.get(i));
        }
        // Longest-processing-time first by target tokens; ties broken by stream position, then slot number.
        Integer[] order = new Integer[perRound];
        for (int i = 0; i < perRound; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> {
            int c = Long.compare(targets[y], targets[x]);
            return c != 0 ? c : Integer.compare(x, y);
        });
        int slots = settings.slots();
        int cap = settings.stepsPerRound();
        long[] load = new long[slots];          // [slots] target tokens assigned so far
        int[] count = new int[slots];           // [slots] steps assigned so far
        int[] slotOf = new int[perRound];       // [slots*K] slot of each step of the round
        for (int idx : order) {
            int best = -1;
            for (int s = 0; s < slots; s++) {
                if (count[s] < cap && (best < 0 || load[s] < load[best])) {
                    best = s;
                }
            }
            slotOf[idx] = best;
            load[best] += targets[idx];
            count[best]++;
        }
        List<List<long[]>> out = new ArrayList<>(slots);
        for (int s = 0; s < slots; s++) {
            out.add(new ArrayList<>(cap));
        }
        for (int i = 0; i < perRound; i++) {
            out.get(slotOf[i]).add(steps.get(i));       // stream order within a slot
        }
        return out;
    }

    private long targetTokens(long[] records) {
        long t = 0;
        for (long r : records) {
            t += lengths.numTargetTokens()[(int) r];
        }
        return t;
    }

    private long[] order(int epoch) {
        return epochs.computeIfAbsent(epoch, this::buildOrder);
    }

    private long[] buildOrder(int epoch) {
        int n = lengths.size();
        // The epoch's generator starts from one output of a generator seeded by (seed, epoch).
        SplitMix64 rng = new SplitMix64(new SplitMix64(settings.seed() ^ ((epoch + 1L) * 0xD1B54A32D192ED03L)).nextLong());
        long[] perm = new long[n];              // [N] record indices in this epoch's order
        for (int i = 0; i < n; i++) {
            perm[i] = i;
        }
        rng.shuffle(perm);
        int mega = settings.groupByLength();
        if (mega > 0) {
            int[] len = lengths.numTokens();
            for (int from = 0; from < n; from += mega) {
                int to = Math.min(n, from + mega);
                Long[] part = new Long[to - from];
                for (int i = from; i < to; i++) {
                    part[i - from] = perm[i];
                }
                // longest first; equal lengths keep their shuffled order (Arrays.sort on objects is stable)
                Arrays.sort(part, (a, b) -> Integer.compare(len[(int) (long) b], len[(int) (long) a]));
                for (int i = from; i < to; i++) {
                    perm[i] = part[i - from];
                }
            }
        }
        return perm;
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
