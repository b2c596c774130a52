package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.driver.state.AdapterTensors;

/**
 * Averages the slots' updates of one round, weighted by the target tokens each slot trained (DL4J parameter
 * averaging, weighted as in FedAvg). Updates are streamed in: {@link #add} is called once per slot in slot order,
 * only the running float64 sums are held, and the float32 result is rounded once at the end, so the result is
 * bit-identical whatever executor trained which slot.
 *
 * <p>Two disagreement measures come out with the average:
 * <ul>
 *   <li>{@code slotSpread}: the token-weighted RMS distance of the slots' adapter weights from their average,
 *   relative to the average's norm: sqrt(sum_i w_i |x_i - xbar|^2 / W) / |xbar|. It is zero when all slots agree.
 *   <li>{@code factorDiscordance}: for each LoRA module, |avg(B A) - avg(B) avg(A)|_F / |avg(B A)|_F: the bias of
 *   averaging the factors separately ("aggregation discordance", FFA-LoRA). Reported as the max and the mean over
 *   the modules that fit the {@link #DISCORDANCE_BUDGET} (B A is [out, in/g], so on big models only the first
 *   modules are measured, which keeps the driver's memory bounded).
 * </ul>
 */
public final class UpdateAverager {
    /** Most float64 elements of sum_i w_i B_i A_i held for the discordance measure (128 MiB). */
    public static final long DISCORDANCE_BUDGET = 16L << 20;

    /** The averaged state and the disagreement measures. */
    public record Averaged(AdapterTensors state, long totalTokens, double slotSpread, double maxFactorDiscordance,
                           double meanFactorDiscordance, int modulesMeasured) {}

    private record LoraPair(String aKey, String bKey, int out, int rank, int cols, double[] weightedProduct) {} // product [out, cols]

    private final AdapterTensors layout;
    private final Map<String, double[][]> sums = new LinkedHashMap<>(); // key -> {sum w*x, sum w*m, sum w*v}
    private final List<LoraPair> pairs = new ArrayList<>();
    private double weightedSquareNorm; // sum_i w_i |x_i|^2 over all weights
    private long totalTokens;
    private int nextSlot;

    /** {@code layout}: the round's starting state; every update must have its keys and shapes. */
    public UpdateAverager(AdapterTensors layout) {
        this.layout = layout;
        for (String k : layout.keys()) {
            int n = layout.tensor(k).size();
            sums.put(k, new double[][] {new double[n], new double[n], new double[n]});
        }
        long budget = DISCORDANCE_BUDGET;
        for (String k : layout.keys()) {
            if (!k.endsWith("lora_A.weight")) {
                continue;
            }
            String bKey = k.substring(0, k.length() - "lora_A.weight".length()) + "lora_B.weight";
            if (!sums.containsKey(bKey)) {
                continue;
            }
            long[] aShape = layout.tensor(k).shape();   // [r, cols]
            long[] bShape = layout.tensor(bKey).shape(); // [out, r]
            if (aShape.length != 2 || bShape.length != 2 || aShape[0] != bShape[1]) {
                continue;
            }
            long size = bShape[0] * aShape[1];
            if (size > budget) {
                break;
            }
            budget -= size;
            pairs.add(new LoraPair(k, bKey, (int) bShape[0], (int) aShape[0], (int) aShape[1], new double[(int) size]));
        }
    }

    /** Adds slot {@code slot}'s update, which trained {@code tokens} target tokens. Slots must come in order 0, 1, ... */
    public void add(int slot, AdapterTensors update, long tokens) {
        if (slot != nextSlot) {
            throw new IllegalStateException("updates must be added in slot order: expected slot " + nextSlot + ", got " + slot);
        }
        if (tokens <= 0) {
            throw new IllegalArgumentException("slot " + slot + " trained " + tokens
                    + " target tokens; every slot must train at least one (is the plan empty for this slot?)");
        }
        if (!layout.sameLayout(update)) {
            throw new IllegalArgumentException("slot " + slot + "'s update has keys/shapes different from the round's start state");
        }
        nextSlot++;
        totalTokens += tokens;
        double w = tokens;
        for (String k : layout.keys()) {
            AdapterTensors.Tensor t = update.tensor(k);
            double[][] s = sums.get(k);
            accumulate(s[0], t.weights(), w);
            accumulate(s[1], t.adamM(), w);
            accumulate(s[2], t.adamV(), w);
            for (float x : t.weights()) {
                weightedSquareNorm += w * x * x;
            }
        }
        for (LoraPair p : pairs) {
            float[] a = update.tensor(p.aKey()).weights(); // [r, cols]
            float[] b = update.tensor(p.bKey()).weights(); // [out, r]
            for (int o = 0; o < p.out(); o++) {
                for (int j = 0; j < p.rank(); j++) {
                    double bw = w * b[o * p.rank() + j];
                    int row = o * p.cols();
                    int aRow = j * p.cols();
                    for (int c = 0; c < p.cols(); c++) {
                        p.weightedProduct()[row + c] += bw * a[aRow + c];
                    }
                }
            }
        }
    }

    /** Ends the round: the weighted average with optimizer step {@code step}, and the disagreement measures. */
    public Averaged finish(long step) {
        if (nextSlot == 0) {
            throw new IllegalStateException("no update was added");
        }
        double total = totalTokens;
        Map<String, AdapterTensors.Tensor> out = new LinkedHashMap<>();
        Map<String, double[]> meanWeights = new LinkedHashMap<>();
        double meanSquareNorm = 0;
        for (String k : layout.keys()) {
            double[][] s = sums.get(k);
            double[] mean = new double[s[0].length];
            for (int i = 0; i < mean.length; i++) {
                mean[i] = s[0][i] / total;
                meanSquareNorm += mean[i] * mean[i];
            }
            meanWeights.put(k, mean);
            out.put(k, new AdapterTensors.Tensor(layout.tensor(k).shape().clone(), toFloats(mean),
                    toFloats(scaled(s[1], total)), toFloats(scaled(s[2], total))));
        }
        double variance = Math.max(0, weightedSquareNorm / total - meanSquareNorm);
        double spread = meanSquareNorm == 0 ? 0 : Math.sqrt(variance / meanSquareNorm);

        double maxDisc = 0;
        double sumDisc = 0;
        for (LoraPair p : pairs) {
            double[] a = meanWeights.get(p.aKey());
            double[] b = meanWeights.get(p.bKey());
            double diff = 0;
            double norm = 0;
            for (int o = 0; o < p.out(); o++) {
                for (int c = 0; c < p.cols(); c++) {
                    double prod = 0;
                    for (int j = 0; j < p.rank(); j++) {
                        prod += b[o * p.rank() + j] * a[j * p.cols() + c];
                    }
                    double avgProduct = p.weightedProduct()[o * p.cols() + c] / total;
                    diff += (avgProduct - prod) * (avgProduct - prod);
                    norm += avgProduct * avgProduct;
                }
            }
            double d = norm == 0 ? 0 : Math.sqrt(diff / norm);
            maxDisc = Math.max(maxDisc, d);
            sumDisc += d;
        }
        double meanDisc = pairs.isEmpty() ? 0 : sumDisc / pairs.size();
        return new Averaged(new AdapterTensors(out, step), totalTokens, spread, maxDisc, meanDisc, pairs.size());
    }

    private static void accumulate(double[] sum, float[] x, double w) {
        for (int i = 0; i < x.length; i++) {
            sum[i] += w * x[i];
        }
    }

    private static double[] scaled(double[] s, double total) {
        double[] r = new double[s.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = s[i] / total;
        }
        return r;
    }

    private static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }
}
