package org.qalora.worker.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.qalora.quant.util.SplitMix64;

/** The sampler's distribution against its definition: softmax at a temperature, cut to the nucleus. */
class TokenSamplerTest {
    private static final float[] LOGITS = {
            (float) Math.log(0.2), (float) Math.log(0.5), (float) Math.log(0.3), Float.NEGATIVE_INFINITY};

    private static double[] frequencies(Sampling s, int draws) {
        SplitMix64 rng = TokenSampler.stream(s.seed(), 0);
        double[] f = new double[LOGITS.length];
        for (int i = 0; i < draws; i++) {
            f[TokenSampler.pick(LOGITS, 0, LOGITS.length, s, rng)] += 1.0 / draws;
        }
        return f;
    }

    @Test
    void temperatureOneSamplesTheSoftmax() {
        double[] f = frequencies(new Sampling(1, 1, 5), 40_000);
        assertEquals(0.2, f[0], 0.01);
        assertEquals(0.5, f[1], 0.01);
        assertEquals(0.3, f[2], 0.01);
        assertEquals(0.0, f[3], 0.0);
    }

    @Test
    void theNucleusKeepsTheFewestTokensReachingTopP() {
        // 0.5 alone is below 0.6; 0.5 + 0.3 reaches it, so token 0 is cut and the rest renormalised to 5/8, 3/8.
        double[] f = frequencies(new Sampling(1, 0.6, 5), 40_000);
        assertEquals(0.0, f[0], 0.0); // never drawn
        assertEquals(0.625, f[1], 0.01);
        assertEquals(0.375, f[2], 0.01);
        // a tiny top-p keeps the most probable token only
        assertEquals(1.0, frequencies(new Sampling(1, 1e-6, 5), 1000)[1], 1e-9);
    }

    @Test
    void temperatureSharpensAndGreedyIsTheArgmax() {
        // T = 0.5 squares the probabilities: 0.04, 0.25, 0.09 of 0.38
        double[] f = frequencies(new Sampling(0.5, 1, 9), 40_000);
        assertEquals(0.25 / 0.38, f[1], 0.01);
        assertEquals(1, TokenSampler.pick(LOGITS, 0, LOGITS.length, Sampling.GREEDY, null));
        assertEquals(0, TokenSampler.argmax(new float[] {1, 1, 0}, 0, 3), "ties go to the lower id");
    }

    @Test
    void badSettingsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Sampling(-1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new Sampling(1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new Sampling(Double.NaN, 1, 0));
    }
}
