package org.qalora.worker.generate;

import java.util.Arrays;
import org.qalora.quant.util.SplitMix64;

/**
 * Picks one token from one row of logits. Everything that decides the pick is computed in double in a fixed order,
 * and ties go to the lower id, so the same logits and stream give the same token on every machine.
 */
final class TokenSampler {
    private TokenSampler() {}

    /** The stream of prompt {@code prompt} under {@code seed}: independent of batch composition and of the process. */
    static SplitMix64 stream(long seed, int prompt) {
        return new SplitMix64(SplitMix64.mix64(seed ^ SplitMix64.mix64(prompt + 1L)));
    }

    /** The token for {@code logits[offset, offset + vocab)}. */
    static int pick(float[] logits, int offset, int vocab, Sampling s, SplitMix64 rng) {
        if (s.greedy()) {
            return argmax(logits, offset, vocab);
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        if (!Double.isFinite(max)) {
            throw new IllegalStateException("the logits hold no finite maximum (" + max + "): the model produced NaN or"
                    + " infinity");
        }
        double[] p = new double[vocab];                       // unnormalised exp((l - max) / T)
        double total = 0;
        for (int i = 0; i < vocab; i++) {
            p[i] = Math.exp((logits[offset + i] - max) / s.temperature());
            total += p[i];
        }
        Integer[] order = new Integer[vocab];                 // ids by probability, ties by id
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        int kept = 0;
        double mass = 0;
        while (kept < vocab && (kept == 0 || mass < s.topP() * total)) {  // the nucleus: reach top-p of the mass
            mass += p[order[kept++]];
        }
        double u = rng.nextDouble() * mass;
        double acc = 0;
        for (int k = 0; k < kept; k++) {
            acc += p[order[k]];
            if (u < acc) {
                return order[k];
            }
        }
        return order[kept - 1];                               // u rounded up to the mass itself
    }

    static int argmax(float[] logits, int offset, int vocab) {
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (logits[offset + i] > logits[offset + best]) {
                best = i;
            }
        }
        return best;
    }
}
