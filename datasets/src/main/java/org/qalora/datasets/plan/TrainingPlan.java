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
import java.util.List;

/**
 * Which records every slot trains on in every round, decided from (seed, dataset, settings) alone, so a resumed
 * or re-run job sees exactly the same batches.
 *
 * <p>Per epoch e:
 * <ol>
 *   <li>shuffle all record indices with a generator seeded from (seed, e);</li>
 *   <li>cut the shuffled order into mega-batches of {@value #MEGABATCH} records and sort each by length, longest
 *       first (length grouping as HF's LengthGroupedSampler: similar lengths share a micro-batch, so little padding);</li>
 *   <li>pack each mega-batch greedily into micro-batches: the first record fixes T (its length), then records are
 *       added while {@code (B+1) * T <= maxTokensPerMicroBatch};</li>
 *   <li>shuffle the epoch's micro-batches (so a round mixes long and short ones).</li>
 * </ol>
 * The epochs' micro-batches form one stream; round r takes the next {@code slots * K * M} of them (a round may
 * span the end of one epoch and the start of the next: no record is dropped). Within a round, micro-batches go to
 * slots longest-processing-time first by target tokens: largest first, each to the slot with the fewest target
 * tokens so far among those that still have room, every slot getting exactly K*M. Each slot's micro-batches keep
 * their stream order and are cut into K steps of M.
 */
public final class TrainingPlan {

    /** Records per length-grouping mega-batch. */
    public static final int MEGABATCH = 1024;
    private static final String VERSION = "qalora-plan-v1";

    private final PlanSettings settings;
    private final RecordLengths lengths;
    private final String hash;
    /** Epochs kept in memory; older ones are dropped and rebuilt on demand (they are a pure function of the seed). */
    private static final int CACHED_EPOCHS = 3;
    /** Micro-batches of each epoch computed so far, in stream order; null once evicted. */
    private final List<List<PlannedBatch>> epochs = new ArrayList<>();
    /** epochStart[e] = stream position of epoch e's first micro-batch (one more entry than epochs). */
    private final List<Long> epochStart = new ArrayList<>(List.of(0L));

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
        if (lengths.size() < settings.slots()) {
            throw new IllegalArgumentException("the dataset has " + lengths.size() + " records but the plan has "
                    + settings.slots() + " slots; every slot needs data: use at most " + lengths.size()
                    + " slots or add data");
        }
        for (int i = 0; i < lengths.size(); i++) {
            if (lengths.numTokens()[i] > settings.maxTokensPerMicroBatch()) {
                throw new IllegalArgumentException("record " + i + " has " + lengths.numTokens()[i]
                        + " tokens, more than maxTokensPerMicroBatch " + settings.maxTokensPerMicroBatch()
                        + "; raise the micro-batch token budget or prepare with smaller --source-max-len/--target-max-len");
            }
        }
        String hash = sha256(VERSION + "\n" + manifest.datasetHash() + "\n" + manifest.lengthsSha256() + "\n"
                + settings.seed() + "," + settings.slots() + "," + settings.stepsPerRound() + ","
                + settings.microBatchesPerStep() + "," + settings.maxTokensPerMicroBatch());
        return new TrainingPlan(settings, lengths, hash);
    }

    /** Stable across JVMs: SHA-256 of the plan version, dataset hash, lengths hash and settings. */
    public String hash() {
        return hash;
    }

    public PlanSettings settings() {
        return settings;
    }

    /** K steps of M micro-batches for one slot in one round. */
    public synchronized List<List<PlannedBatch>> stepsFor(int round, int slot) {
        if (slot < 0 || slot >= settings.slots()) {
            throw new IllegalArgumentException("slot " + slot + " is not in [0, " + settings.slots() + ")");
        }
        List<PlannedBatch> mine = assign(round).get(slot);
        List<List<PlannedBatch>> steps = new ArrayList<>(settings.stepsPerRound());
        int m = settings.microBatchesPerStep();
        for (int k = 0; k < settings.stepsPerRound(); k++) {
            steps.add(List.copyOf(mine.subList(k * m, (k + 1) * m)));
        }
        return List.copyOf(steps);
    }

    /** Target tokens each slot gets in a round: [slots]. */
    public synchronized long[] targetTokensPerSlot(int round) {
        List<List<PlannedBatch>> a = assign(round);
        long[] out = new long[a.size()];
        for (int s = 0; s < out.length; s++) {
            out[s] = a.get(s).stream().mapToLong(PlannedBatch::targetTokens).sum();
        }
        return out;
    }

    /** max / mean of the slots' target tokens in a round: 1.0 is perfect balance. */
    public double imbalance(int round) {
        long[] t = targetTokensPerSlot(round);
        double mean = Arrays.stream(t).average().orElse(0);
        return mean == 0 ? 1.0 : Arrays.stream(t).max().orElse(0) / mean;
    }

    /** The epoch the round's first micro-batch belongs to. */
    public synchronized int epochOf(int round) {
        long pos = (long) round * settings.microBatchesPerRound();
        return epochAt(pos);
    }

    /** Rounds needed so every record of epochs [0, epochs) is trained on once per epoch. */
    public synchronized int roundsFor(int epochs) {
        ensureEpoch(epochs - 1);
        long total = epochStart.get(epochs);
        return Math.toIntExact((total + settings.microBatchesPerRound() - 1) / settings.microBatchesPerRound());
    }

    /** Micro-batches of one epoch, in stream order. */
    public synchronized List<PlannedBatch> epochMicroBatches(int epoch) {
        ensureEpoch(epoch);
        return epoch(epoch);
    }

    // --- internals ---

    private List<List<PlannedBatch>> assign(int round) {
        if (round < 0) {
            throw new IllegalArgumentException("round must be >= 0, got " + round);
        }
        int perRound = settings.microBatchesPerRound();
        long start = (long) round * perRound;
        List<PlannedBatch> batches = new ArrayList<>(perRound);
        for (int i = 0; i < perRound; i++) {
            batches.add(at(start + i));
        }
        // Longest-processing-time first by target tokens; ties broken by stream position, then slot number.
        Integer[] order = new Integer[perRound];
        for (int i = 0; i < perRound; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> {
            int c = Long.compare(batches.get(y).targetTokens(), batches.get(x).targetTokens());
            return c != 0 ? c : Integer.compare(x, y);
        });
        int slots = settings.slots();
        int cap = perRound / slots;
        long[] load = new long[slots];          // [slots] target tokens assigned so far
        int[] count = new int[slots];           // [slots] micro-batches assigned so far
        int[] slotOf = new int[perRound];       // [slots*K*M] slot of each micro-batch of the round
        for (int idx : order) {
            int best = -1;
            for (int s = 0; s < slots; s++) {
                if (count[s] < cap && (best < 0 || load[s] < load[best])) {
                    best = s;
                }
            }
            slotOf[idx] = best;
            load[best] += batches.get(idx).targetTokens();
            count[best]++;
        }
        List<List<PlannedBatch>> out = new ArrayList<>(slots);
        for (int s = 0; s < slots; s++) {
            out.add(new ArrayList<>(cap));
        }
        for (int i = 0; i < perRound; i++) {
            out.get(slotOf[i]).add(batches.get(i));     // stream order within a slot
        }
        return out;
    }

    private PlannedBatch at(long pos) {
        int e = epochAt(pos);
        return epoch(e).get(Math.toIntExact(pos - epochStart.get(e)));
    }

    private int epochAt(long pos) {
        int e = 0;
        while (true) {
            ensureEpoch(e);
            if (pos < epochStart.get(e + 1)) {
                return e;
            }
            e++;
        }
    }

    private void ensureEpoch(int epoch) {
        while (epochs.size() <= epoch) {
            List<PlannedBatch> mb = buildEpoch(epochs.size());
            epochs.add(mb);
            epochStart.add(epochStart.getLast() + mb.size());
            if (epochs.size() > CACHED_EPOCHS) {
                epochs.set(epochs.size() - 1 - CACHED_EPOCHS, null);
            }
        }
    }

    /** Epoch e's micro-batches (e must already be known to {@link #ensureEpoch}); rebuilt if evicted. */
    private List<PlannedBatch> epoch(int e) {
        List<PlannedBatch> mb = epochs.get(e);
        if (mb == null) {
            mb = buildEpoch(e);
            epochs.set(e, mb);
        }
        return mb;
    }

    private List<PlannedBatch> buildEpoch(int epoch) {
        int n = lengths.size();
        // The epoch's generator starts from one output of a generator seeded by (seed, epoch).
        SplitMix64 rng = new SplitMix64(new SplitMix64(settings.seed() ^ ((epoch + 1L) * 0xD1B54A32D192ED03L)).nextLong());
        long[] perm = new long[n];              // [N] record indices in this epoch's order
        for (int i = 0; i < n; i++) {
            perm[i] = i;
        }
        rng.shuffle(perm);
        int[] len = lengths.numTokens();
        int[] tgt = lengths.numTargetTokens();
        int budget = settings.maxTokensPerMicroBatch();
        List<PlannedBatch> out = new ArrayList<>();
        for (int from = 0; from < n; from += MEGABATCH) {
            int to = Math.min(n, from + MEGABATCH);
            Long[] mega = new Long[to - from];
            for (int i = from; i < to; i++) {
                mega[i - from] = perm[i];
            }
            // longest first; equal lengths keep their shuffled order (Arrays.sort on objects is stable)
            Arrays.sort(mega, (a, b) -> Integer.compare(len[(int) (long) b], len[(int) (long) a]));
            int i = 0;
            while (i < mega.length) {
                int seqLen = len[(int) (long) mega[i]];
                int b = Math.max(1, Math.min(budget / seqLen, mega.length - i));
                long[] idx = new long[b];
                long targets = 0;
                for (int j = 0; j < b; j++) {
                    idx[j] = mega[i + j];
                    targets += tgt[(int) idx[j]];
                }
                out.add(new PlannedBatch(b, seqLen, idx, targets));
                i += b;
            }
        }
        // Shuffle micro-batch order so rounds mix lengths.
        long[] order = new long[out.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        rng.shuffle(order);
        List<PlannedBatch> shuffled = new ArrayList<>(out.size());
        for (long o : order) {
            shuffled.add(out.get((int) o));
        }
        return List.copyOf(shuffled);
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
