package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.kernels.KernelPool;

/**
 * Averages the slots' updates of one round, weighted by the target tokens each slot trained (DL4J parameter
 * averaging, weighted as in FedAvg). {@link #add} registers each slot in slot order (an update in memory, or an open
 * file read tensor by tensor); {@link #finish} then averages the keys in parallel, one task per key: each task sums
 * its key's weights, m and v over the slots <em>in slot order</em> in float64 and rounds once to float32. Every
 * element's sum is the same chain as a sequential pass over the slots, so the result is bit-identical whatever the
 * thread count, and whatever executor trained which slot. Only one key's sums per thread are held (not the whole
 * model's float64 sums: 2.1 GB at LLaMA-7B r64), and a slot's update is never materialised whole. Where every slot's
 * tensor is mapped from a local file ({@link Source#mapped}), a key is summed a block at a time straight from the
 * mappings ({@link BlockedPartAverage}: each byte read from memory once); otherwise each slot's whole tensor is read
 * in turn (the simple path). Both are the same arithmetic, bit for bit.
 *
 * <p>{@link #averageKeys} does the same for a subset of the keys, which is how the round's averaging tasks each do
 * their key range on the executors ({@link AveragingTask}); {@link #measures} then combines the ranges'
 * {@link KeyStats} in a fixed order, so the split changes neither the state nor the measures by a bit.
 *
 * <p>Two disagreement measures come out with the average:
 * <ul>
 *   <li>{@code slotSpread}: the token-weighted RMS distance of the slots' adapter weights from their average,
 *   relative to the average's norm: sqrt(sum_i w_i |x_i - xbar|^2 / W) / |xbar|. It is zero when all slots agree.
 *   Its sums are formed per (slot, key) and added slot by slot in key order, a fixed order (this metric's last
 *   bits differ from the single running sum of the sequential averager before 2026-12-06; the state does not).
 *   <li>{@code factorDiscordance}: for each LoRA module, |avg(B A) - avg(B) avg(A)|_F / |avg(B A)|_F: the bias of
 *   averaging the factors separately ("aggregation discordance", FFA-LoRA), over a fixed sample of B A's entries:
 *   an evenly spaced grid of at most {@link #DISCORDANCE_SAMPLE_ROWS} rows by {@link #DISCORDANCE_SAMPLE_COLS}
 *   columns of each module ({@link #sampleIndices}), chosen from the layout alone, so the driver and every
 *   executor sample the same entries. Every module is measured; the max and the mean over the modules are
 *   reported. It is a diagnostic: forming all of B A ([out, in/g] per slot) cost ~1 G multiply-adds per slot at
 *   LLaMA-7B r64, more than the averaging itself; the grid costs rank x 1024 per module and slot (~15 M per slot
 *   at 7B), and the samples are taken from the tensors as they are averaged, so nothing is read twice. Modules
 *   no bigger than the grid are measured exactly.
 * </ul>
 */
public final class UpdateAverager {
    /** Rows of each module's product B A [out, cols] that the discordance measure samples (evenly spaced). */
    public static final int DISCORDANCE_SAMPLE_ROWS = 32;
    /** Columns of each module's product B A that the discordance measure samples (evenly spaced). */
    public static final int DISCORDANCE_SAMPLE_COLS = 32;

    /** The averaged state and the disagreement measures. */
    public record Averaged(AdapterTensors state, long totalTokens, double slotSpread, double maxFactorDiscordance,
                           double meanFactorDiscordance, int modulesMeasured) {}

    /** One slot's tensors on request: part 0 the weights, 1 Adam m, 2 Adam v. Reads must be thread-safe. */
    public interface Source {
        float[] read(String key, int part);

        /**
         * As {@link #read(String, int)}, decoding into {@code scratch} (at least the tensor's length, of the calling
         * thread) where the source has to decode anyway; returns the array that holds the values: {@code scratch}, or
         * an array of the source's own. Only the tensor's first numel entries are meaningful.
         */
        default float[] read(String key, int part, float[] scratch) {
            return read(key, part);
        }

        /**
         * The tensor as it lies in a mapped file, with the check its bytes must pass, for the blocked sums
         * ({@link BlockedPartAverage}); null where the source has no mapping (an update in memory, a remote file),
         * and then {@link #read(String, int, float[])} is used. Each call starts a fresh check.
         */
        default MappedTensor mapped(String key, int part) {
            return null;
        }
    }

    /** The largest tensor of the layout, in elements: the size of each thread's scratch arrays. */
    private final int largest;
    /** Per kernel thread, simple path: the float64 sums of the key being averaged, reused key after key. */
    private final ThreadLocal<double[]> sums;
    /** Per kernel thread, simple path: a slot's tensor decoded from its file. */
    private final ThreadLocal<float[]> decoded;
    /** The path for slots whose tensors are mapped from files: block by block, each byte read once. */
    private final BlockedPartAverage blocked;

    /**
     * What the disagreement measures need of some keys' averages, small enough to return from a Spark task: per key
     * (by its index in the layout) the slots' sums of w x^2 and the sum of xbar^2, and the discordance of the
     * measured modules (by their index among all measured modules) whose A and B are both among the keys.
     */
    public record KeyStats(int[] keyIndex, double[][] squares, double[] meanSquares, int[] pairIndex,
                           double[] discordance) implements java.io.Serializable {}

    /** The averaged tensors of some keys, in layout order, and their {@link KeyStats}. */
    public record KeysAveraged(Map<String, AdapterTensors.Tensor> tensors, KeyStats stats) {}

    /** The disagreement measures of a whole round. */
    public record Measures(double slotSpread, double maxFactorDiscordance, double meanFactorDiscordance,
                           int modulesMeasured) {}

    private record Slot(Source source, double weight) {}

    /** A module: product B A is [out, cols]; {@code rows} x {@code sampledCols} its entries the measure uses. */
    private record LoraPair(String aKey, String bKey, int out, int rank, int cols, int[] rows, int[] sampledCols) {}

    private final Map<String, long[]> layout; // key -> shape, key order
    private final List<String> keys;
    private final List<LoraPair> pairs = new ArrayList<>();
    private final List<Slot> slots = new ArrayList<>();
    private final KernelPool pool;
    private long totalTokens;

    /** {@code layout}: the round's starting state; every update must have its keys and shapes. */
    public UpdateAverager(AdapterTensors layout) {
        this(shapes(layout), KernelPool.shared());
    }

    /** {@code layout}: key -> shape in key order (e.g. {@link AdapterStateFile#layout}); {@code pool} runs the keys. */
    public UpdateAverager(Map<String, long[]> layout, KernelPool pool) {
        this(layout, pool, BlockedPartAverage.DEFAULT_BLOCK);
    }

    /** As {@link #UpdateAverager(Map, KernelPool)} with {@code block} elements per block of the blocked sums. */
    UpdateAverager(Map<String, long[]> layout, KernelPool pool, int block) {
        this.blocked = new BlockedPartAverage(block);
        this.layout = new LinkedHashMap<>(layout);
        this.keys = new ArrayList<>(layout.keySet());
        this.pool = pool;
        this.largest = (int) layout.values().stream().mapToLong(AdapterTensors::numel).max().orElse(0);
        this.sums = ThreadLocal.withInitial(() -> new double[largest]);
        this.decoded = ThreadLocal.withInitial(() -> new float[largest]);
        for (String k : keys) {
            if (!k.endsWith("lora_A.weight")) {
                continue;
            }
            String bKey = k.substring(0, k.length() - "lora_A.weight".length()) + "lora_B.weight";
            if (!layout.containsKey(bKey)) {
                continue;
            }
            long[] aShape = layout.get(k);    // [r, cols]
            long[] bShape = layout.get(bKey); // [out, r]
            if (aShape.length != 2 || bShape.length != 2 || aShape[0] != bShape[1]) {
                continue;
            }
            int out = (int) bShape[0], cols = (int) aShape[1];
            pairs.add(new LoraPair(k, bKey, out, (int) aShape[0], cols, sampleIndices(out, DISCORDANCE_SAMPLE_ROWS),
                    sampleIndices(cols, DISCORDANCE_SAMPLE_COLS)));
        }
    }

    /** Adds slot {@code slot}'s update, which trained {@code tokens} target tokens. Slots must come in order 0, 1, ... */
    public void add(int slot, AdapterTensors update, long tokens) {
        check(slot, tokens, shapes(update));
        slots.add(new Slot((key, part) -> {
            AdapterTensors.Tensor t = update.tensor(key);
            return part == 0 ? t.weights() : part == 1 ? t.adamM() : t.adamV();
        }, tokens));
        totalTokens += tokens;
    }

    /**
     * Adds slot {@code slot}'s update as a {@link Source} whose keys and shapes are {@code shapes} (e.g. one that
     * checks each tensor's digest as it reads it); it trained {@code tokens} target tokens.
     */
    public void add(int slot, Source source, long tokens, Map<String, long[]> shapes) {
        check(slot, tokens, shapes);
        slots.add(new Slot(source, tokens));
        totalTokens += tokens;
    }

    /** The keys in layout order. */
    public List<String> keys() { return List.copyOf(keys); }

    /** The LoRA modules the discordance measure covers, as their A keys, in layout order. */
    public List<String> measuredModules() { return pairs.stream().map(LoraPair::aKey).toList(); }

    /** Adds slot {@code slot}'s update file, open until {@link #finish} returns; it trained {@code tokens} target tokens. */
    public void add(int slot, AdapterStateFile.Reader update, long tokens) {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (String k : update.keys()) {
            shapes.put(k, update.shape(k));
        }
        check(slot, tokens, shapes);
        slots.add(new Slot(new Source() {
            @Override
            public float[] read(String key, int part) {
                return part == 0 ? update.weights(key) : part == 1 ? update.adamM(key) : update.adamV(key);
            }

            @Override
            public MappedTensor mapped(String key, int part) {
                java.lang.foreign.MemorySegment bytes = update.mappedBytes(AdapterStateFile.Reader.tensorName(key, part));
                return bytes == null ? null : new MappedTensor(bytes, MappedTensor.UNCHECKED);
            }
        }, tokens));
        totalTokens += tokens;
    }

    private void check(int slot, long tokens, Map<String, long[]> shapes) {
        if (slot != slots.size()) {
            throw new IllegalStateException("updates must be added in slot order: expected slot " + slots.size() + ", got " + slot);
        }
        if (tokens <= 0) {
            throw new IllegalArgumentException("slot " + slot + " trained " + tokens
                    + " target tokens; every slot must train at least one (is the plan empty for this slot?)");
        }
        boolean same = new ArrayList<>(shapes.keySet()).equals(keys);
        for (int i = 0; same && i < keys.size(); i++) {
            same = Arrays.equals(shapes.get(keys.get(i)), layout.get(keys.get(i)));
        }
        if (!same) {
            throw new IllegalArgumentException("slot " + slot + "'s update has keys/shapes different from the round's start state");
        }
    }

    /** Ends the round: the weighted average with optimizer step {@code step}, and the disagreement measures. */
    public Averaged finish(long step) {
        KeysAveraged all = averageKeys(keys);
        Measures m = measures(List.of(all.stats()), slots.size(), totalTokens);
        return new Averaged(new AdapterTensors(all.tensors(), step), totalTokens, m.slotSpread(),
                m.maxFactorDiscordance(), m.meanFactorDiscordance(), m.modulesMeasured());
    }

    /**
     * Averages the keys {@code subset} (in layout order) in parallel, one task per key: each sums its key's
     * weights, m and v over the slots in slot order in float64 and rounds once to float32, so every element is the
     * same chain whichever keys are averaged together, here or in another JVM. Also measures the discordance of
     * the measured modules whose A and B are both in {@code subset}.
     */
    public KeysAveraged averageKeys(List<String> subset) {
        AdapterTensors.Tensor[] out = new AdapterTensors.Tensor[subset.size()];
        int[] order = new int[subset.size()];
        for (int t = 0; t < order.length; t++) {
            order[t] = t;
        }
        KeyStats stats = averageKeys(subset, order, new java.util.concurrent.Semaphore(Integer.MAX_VALUE), () -> false,
                (t, tensor) -> out[t] = tensor);
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        for (int t = 0; t < subset.size(); t++) {
            tensors.put(subset.get(t), out[t]);
        }
        return new KeysAveraged(tensors, stats);
    }

    /** Takes each averaged key of {@link #averageKeys(List, int[], java.util.concurrent.Semaphore, java.util.function.BooleanSupplier, KeySink)}. */
    @FunctionalInterface
    public interface KeySink {
        /** Key {@code subset.get(index)}'s average; called on the thread that averaged it. */
        void accept(int index, AdapterTensors.Tensor tensor);
    }

    /**
     * As {@link #averageKeys(List)}, handing each key to {@code sink} as soon as it is averaged instead of collecting
     * them, so a writer can stream them out while later keys are averaged: the keys are started in the order
     * {@code order} gives (indices into {@code subset}), each only after taking one of {@code window}'s permits,
     * which the consumer gives back once it is done with the key; so at most that many averaged keys are held. The
     * permit is taken before the key is (one counter), so the earliest key not yet consumed is always being
     * averaged or done, and a consumer that waits for keys in {@code order} never waits forever. Once {@code
     * stopped} says so, keys not yet started are skipped (the consumer failed). The arithmetic is exactly
     * {@link #averageKeys(List)}'s.
     */
    public KeyStats averageKeys(List<String> subset, int[] order, java.util.concurrent.Semaphore window,
                                java.util.function.BooleanSupplier stopped, KeySink sink) {
        if (slots.isEmpty()) {
            throw new IllegalStateException("no update was added");
        }
        double total = totalTokens;
        int n = slots.size();
        int[] keyIndex = new int[subset.size()];
        for (int t = 0; t < subset.size(); t++) {
            keyIndex[t] = keys.indexOf(subset.get(t));
            if (keyIndex[t] < 0 || (t > 0 && keyIndex[t] <= keyIndex[t - 1])) {
                throw new IllegalArgumentException("key '" + subset.get(t) + "' is not in the layout, or out of order");
            }
        }
        if (order.length != subset.size() || java.util.stream.IntStream.of(order).distinct().count() != order.length
                || java.util.stream.IntStream.of(order).anyMatch(t -> t < 0 || t >= order.length)) {
            throw new IllegalArgumentException("order must list each of the " + subset.size() + " keys once");
        }
        double[][] squares = new double[subset.size()][n];  // [key][slot]: sum w x^2 over the key's weights
        double[] meanSquares = new double[subset.size()];   // [key]: sum xbar^2
        // The discordance samples (sampleOf): per key, each slot's and the float64 mean's, taken as they are averaged.
        Map<String, double[][]> pairSlots = new java.util.concurrent.ConcurrentHashMap<>();
        Map<String, double[]> pairMeans = new java.util.concurrent.ConcurrentHashMap<>();
        Map<String, LoraPair> pairOf = new java.util.HashMap<>();
        for (LoraPair p : pairs) {
            pairOf.put(p.aKey(), p);
            pairOf.put(p.bKey(), p);
        }
        java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicBoolean failed = new java.util.concurrent.atomic.AtomicBoolean();
        pool.run(subset.size(), ignored -> {
            window.acquireUninterruptibly();
            int t = order[next.getAndIncrement()];
            if (failed.get() || stopped.getAsBoolean()) {
                window.release();
                return;
            }
            try {
                averageKey(subset, t, n, total, pairOf, squares, meanSquares, pairSlots, pairMeans, sink);
            } catch (RuntimeException | Error e) {
                // Wake the keys waiting for a permit (their consumer waits for this one): they see failed and skip.
                failed.set(true);
                window.release(subset.size());
                throw e;
            }
        });

        List<Integer> measured = new ArrayList<>();
        for (int p = 0; p < pairs.size(); p++) {
            if (pairMeans.containsKey(pairs.get(p).aKey()) && pairMeans.containsKey(pairs.get(p).bKey())) {
                measured.add(p);
            }
        }
        double[] discordance = new double[measured.size()];
        pool.run(measured.size(), t -> {
            LoraPair p = pairs.get(measured.get(t));
            discordance[t] = discordance(p, pairSlots.get(p.aKey()), pairSlots.get(p.bKey()),
                    pairMeans.get(p.aKey()), pairMeans.get(p.bKey()), total);
        });
        return new KeyStats(keyIndex, squares, meanSquares, measured.stream().mapToInt(Integer::intValue).toArray(),
                discordance);
    }

    /**
     * Averages key {@code subset.get(t)} into {@code sink}, filling its entries of the measures' arrays: each part
     * block by block where every slot's tensor is mapped ({@link BlockedPartAverage}), else by the simple path; the
     * two are the same arithmetic, so which one ran changes no bit.
     */
    private void averageKey(List<String> subset, int t, int n, double total, Map<String, LoraPair> pairOf,
                            double[][] squares, double[] meanSquares, Map<String, double[][]> pairSlots,
                            Map<String, double[]> pairMeans, KeySink sink) {
        String k = subset.get(t);
        LoraPair pair = pairOf.get(k);
        int[] samples = pair == null ? null : sampledElements(pair, k);
        int numel = (int) AdapterTensors.numel(layout.get(k));
        double[] weights = new double[n];
        for (int s = 0; s < n; s++) {
            weights[s] = slots.get(s).weight();
        }
        float[][] parts = new float[3][];
        for (int part = 0; part < 3; part++) {
            int[] sampled = part == 0 ? samples : null; // the measures look at the weights only
            MappedTensor[] mapped = mapped(k, part);
            PartAverage a = mapped != null ? blocked.average(mapped, weights, total, numel, part == 0, sampled)
                    : averageSimply(k, part, numel, total, sampled);
            if (part == 0) {
                System.arraycopy(a.squares(), 0, squares[t], 0, n);
                meanSquares[t] = a.meanSquare();
                if (pair != null) {
                    pairSlots.put(k, a.slotSamples());
                    pairMeans.put(k, a.meanSamples());
                }
            }
            parts[part] = a.mean();
        }
        sink.accept(t, new AdapterTensors.Tensor(layout.get(k).clone(), parts[0], parts[1], parts[2]));
    }

    /** Every slot's tensor of key {@code k}'s part as mapped from its file, or null if any slot's is not mapped. */
    private MappedTensor[] mapped(String k, int part) {
        MappedTensor[] mapped = new MappedTensor[slots.size()];
        for (int s = 0; s < mapped.length; s++) {
            mapped[s] = slots.get(s).source().mapped(k, part);
            if (mapped[s] == null) {
                return null;
            }
        }
        return mapped;
    }

    /**
     * The simple path, for updates held in memory or read from remote files: each slot's whole tensor read (decoded
     * into this thread's scratch where the source decodes), added into whole-tensor float64 sums, then squared.
     */
    private PartAverage averageSimply(String k, int part, int numel, double total, int[] samples) {
        int n = slots.size();
        double[] sum = sums.get();
        float[] scratch = decoded.get();
        double[] squares = part == 0 ? new double[n] : null;
        double[][] slotSamples = samples == null ? null : new double[n][];
        java.util.Arrays.fill(sum, 0, numel, 0.0);
        for (int s = 0; s < n; s++) {
            Slot slot = slots.get(s);
            float[] x = slot.source().read(k, part, scratch);
            accumulate(sum, x, numel, slot.weight());
            if (part == 0) {
                double sq = 0;
                for (int i = 0; i < numel; i++) {
                    sq += slot.weight() * x[i] * x[i];
                }
                squares[s] = sq;
            }
            if (samples != null) {
                slotSamples[s] = sampleOf(samples, i -> x[i]);
            }
        }
        // One pass: the mean (sum / total, in float64), its square into the mean's norm, its float32 rounding.
        float[] f = new float[numel];
        double ms = 0;
        for (int i = 0; i < numel; i++) {
            double m = sum[i] / total;
            ms += m * m;
            f[i] = (float) m;
        }
        return new PartAverage(f, part == 0 ? ms : 0, squares, slotSamples,
                samples == null ? null : sampleOf(samples, i -> sum[i] / total));
    }

    /**
     * The round's disagreement measures from the {@link KeyStats} of key sets that together cover every key once
     * (in any order, from any number of tasks): the sums run slot by slot, key by key, and module by module in
     * layout order, the same order whatever the split, so the measures are bit-identical to {@link #finish}'s.
     * {@code slotCount} slots trained {@code totalTokens} tokens (this averager need not have their updates).
     */
    public Measures measures(List<KeyStats> parts, int slotCount, long totalTokens) {
        int n = slotCount;
        double[][] squares = new double[keys.size()][];
        double[] meanSquares = new double[keys.size()];
        double[] discordance = new double[pairs.size()];
        boolean[] seenPair = new boolean[pairs.size()];
        for (KeyStats ks : parts) {
            for (int t = 0; t < ks.keyIndex().length; t++) {
                int k = ks.keyIndex()[t];
                if (squares[k] != null) {
                    throw new IllegalArgumentException("key '" + keys.get(k) + "' was averaged twice");
                }
                squares[k] = ks.squares()[t];
                meanSquares[k] = ks.meanSquares()[t];
            }
            for (int t = 0; t < ks.pairIndex().length; t++) {
                discordance[ks.pairIndex()[t]] = ks.discordance()[t];
                seenPair[ks.pairIndex()[t]] = true;
            }
        }
        for (int k = 0; k < keys.size(); k++) {
            if (squares[k] == null || squares[k].length != n) {
                throw new IllegalArgumentException("key '" + keys.get(k) + "' was not averaged");
            }
        }
        for (int p = 0; p < pairs.size(); p++) {
            if (!seenPair[p]) {
                throw new IllegalArgumentException("module '" + pairs.get(p).aKey() + "' was split across key sets"
                        + " and could not be measured");
            }
        }
        double total = totalTokens;
        double weightedSquareNorm = 0; // sum_i w_i |x_i|^2, slot by slot, key by key
        for (int s = 0; s < n; s++) {
            for (double[] perKey : squares) {
                weightedSquareNorm += perKey[s];
            }
        }
        double meanSquareNorm = 0;
        for (double m : meanSquares) {
            meanSquareNorm += m;
        }
        double variance = Math.max(0, weightedSquareNorm / total - meanSquareNorm);
        double spread = meanSquareNorm == 0 ? 0 : Math.sqrt(variance / meanSquareNorm);
        double maxDisc = 0;
        double sumDisc = 0;
        for (double d : discordance) {
            maxDisc = Math.max(maxDisc, d);
            sumDisc += d;
        }
        double meanDisc = pairs.isEmpty() ? 0 : sumDisc / pairs.size();
        return new Measures(spread, maxDisc, meanDisc, pairs.size());
    }

    /** The total target tokens of the slots added so far. */
    public long totalTokens() { return totalTokens; }

    /**
     * {@code k} indices of [0, n), evenly spaced from 0 ({@code i * n / k}), or all of them when n <= k. Depends on
     * the layout alone, so every JVM samples the same entries.
     */
    static int[] sampleIndices(int n, int k) {
        int m = Math.min(n, k);
        int[] idx = new int[m];
        for (int i = 0; i < m; i++) {
            idx[i] = (int) ((long) i * n / m);
        }
        return idx;
    }

    /**
     * The flat indices of what the discordance of {@code p} needs of its key {@code key}'s tensor, ascending: of A
     * [rank, cols] the sampled columns ([rank, sampled cols]), of B [out, rank] the sampled rows ([sampled rows,
     * rank]).
     */
    private static int[] sampledElements(LoraPair p, String key) {
        int r = p.rank();
        if (key.equals(p.aKey())) {
            int[] cols = p.sampledCols();
            int[] a = new int[r * cols.length];
            for (int j = 0; j < r; j++) {
                for (int c = 0; c < cols.length; c++) {
                    a[j * cols.length + c] = j * p.cols() + cols[c];
                }
            }
            return a;
        }
        int[] rows = p.rows();
        int[] b = new int[rows.length * r];
        for (int o = 0; o < rows.length; o++) {
            for (int j = 0; j < r; j++) {
                b[o * r + j] = rows[o] * r + j;
            }
        }
        return b;
    }

    /** A tensor's values at {@code indices}, as float64 (exact widening of a slot's float32). */
    private static double[] sampleOf(int[] indices, java.util.function.IntToDoubleFunction x) {
        double[] v = new double[indices.length];
        for (int q = 0; q < indices.length; q++) {
            v[q] = x.applyAsDouble(indices[q]);
        }
        return v;
    }

    /**
     * |avg(B A) - avg(B) avg(A)|_F / |avg(B A)|_F of one module over its sampled entries; sum_i w_i B_i A_i is
     * formed slot by slot in slot order, each entry's sum over the rank j in increasing order, so the value is the
     * same in every JVM. {@code aSlots}/{@code bSlots} are the slots' samples, {@code a}/{@code b} the means'.
     */
    private double discordance(LoraPair p, double[][] aSlots, double[][] bSlots, double[] a, double[] b,
                               double total) {
        int rows = p.rows().length, cols = p.sampledCols().length, r = p.rank();
        double[] weightedProduct = new double[rows * cols]; // [sampled rows, sampled cols]
        for (int s = 0; s < slots.size(); s++) {
            double w = slots.get(s).weight();
            double[] sa = aSlots[s], sb = bSlots[s];
            for (int o = 0; o < rows; o++) {
                for (int j = 0; j < r; j++) {
                    double bw = w * sb[o * r + j];
                    for (int c = 0; c < cols; c++) {
                        weightedProduct[o * cols + c] += bw * sa[j * cols + c];
                    }
                }
            }
        }
        double[] aRow = new double[cols];
        double diff = 0;
        double norm = 0;
        for (int o = 0; o < rows; o++) {
            Arrays.fill(aRow, 0);                          // sampled row o of avg(B) avg(A)
            for (int j = 0; j < r; j++) {
                double bj = b[o * r + j];
                for (int c = 0; c < cols; c++) {
                    aRow[c] += bj * a[j * cols + c];
                }
            }
            for (int c = 0; c < cols; c++) {
                double avgProduct = weightedProduct[o * cols + c] / total;
                diff += (avgProduct - aRow[c]) * (avgProduct - aRow[c]);
                norm += avgProduct * avgProduct;
            }
        }
        return norm == 0 ? 0 : Math.sqrt(diff / norm);
    }

    private static Map<String, long[]> shapes(AdapterTensors state) {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (String k : state.keys()) {
            shapes.put(k, state.tensor(k).shape());
        }
        return shapes;
    }

    private static void accumulate(double[] sum, float[] x, int numel, double w) {
        for (int i = 0; i < numel; i++) {
            sum[i] += w * x[i];
        }
    }
}
