package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.quant.testing.Fixtures;

class GptqQuantizerTest {
    /**
     * Synthetic activations shaped like a transformer's: correlated channels (a low-rank mix plus noise), per-channel
     * scales spread over an order of magnitude, and a few outlier channels, as LLaMA hidden states have. Returns
     * {@code [tokens, in]}.
     */
    static float[] activations(int tokens, int in, long seed) {
        Random rnd = new Random(seed);
        int rank = Math.max(4, in / 8);
        float[] mix = new float[rank * in];                 // [rank, in]
        for (int j = 0; j < mix.length; j++) {
            mix[j] = (float) rnd.nextGaussian();
        }
        float[] channelScale = new float[in];
        for (int i = 0; i < in; i++) {
            channelScale[i] = (float) Math.exp(rnd.nextGaussian() * 0.7) * (i % 61 == 7 ? 20f : 1f);
        }
        float[] x = new float[tokens * in];
        double[] z = new double[rank];
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rank; r++) {
                z[r] = rnd.nextGaussian();
            }
            for (int i = 0; i < in; i++) {
                double v = 0.3 * rnd.nextGaussian();
                for (int r = 0; r < rank; r++) {
                    v += z[r] * mix[r * in + i] / Math.sqrt(rank);
                }
                x[t * in + i] = (float) (v * channelScale[i]);
            }
        }
        return x;
    }

    /** {@code ||W X^T - Wq X^T||_F} in double: the output error GPTQ minimises. */
    static double outputError(float[] w, float[] wq, int out, int in, float[] x, int tokens) {
        double sum = 0;
        for (int t = 0; t < tokens; t++) {
            for (int o = 0; o < out; o++) {
                double d = 0;
                for (int i = 0; i < in; i++) {
                    d += ((double) w[o * in + i] - wq[o * in + i]) * x[t * in + i];
                }
                sum += d * d;
            }
        }
        return Math.sqrt(sum);
    }

    /** Issue 2's criterion: on its calibration activations GPTQ beats RTN for every projection of the fixture. */
    @ParameterizedTest(name = "{0}-bit")
    @ValueSource(ints = {2, 3, 4, 8})
    void beatsRtnOnEveryFixtureProjection(int bits) throws IOException {
        int tokens = 256;
        try (Checkpoint dense = Checkpoint.open(Fixtures.tinyLlama().toString())) {
            for (int layer = 0; layer < 2; layer++) {
                for (String proj : RtnQuantizerTest.PROJECTIONS) {
                    String name = "model.layers." + layer + "." + proj + ".weight";
                    TensorInfo info = dense.info(name);
                    int out = info.dim(0);
                    int in = info.dim(1);
                    float[] w = dense.floats(name);
                    float[] x = activations(tokens, in, 31L * layer + proj.hashCode());
                    Hessian h = new Hessian(in);
                    for (int s = 0; s < 4; s++) { // four "sequences" of 64 tokens
                        h.add(java.util.Arrays.copyOfRange(x, s * 64 * in, (s + 1) * 64 * in), 64, 1);
                    }
                    QuantizedMatrix gptq = new GptqQuantizer(bits, 32, false, false, false, 0.01).quantize(w, out, in, h, name);
                    QuantizedMatrix rtn = new RtnQuantizer(bits, 32, false).quantize(w, out, in, name);
                    double eg = outputError(w, gptq.dequantize(), out, in, x, tokens);
                    double er = outputError(w, rtn.dequantize(), out, in, x, tokens);
                    assertTrue(eg < er, name + " " + bits + "-bit: GPTQ " + eg + " vs RTN " + er);
                }
            }
        }
    }

    /** With an identity Hessian nothing is propagated, so GPTQ must reduce to RTN exactly. */
    @Test
    void identityHessianGivesRtn() {
        int out = 64;
        int in = 256;
        float[] w = new float[out * in];
        Random rnd = new Random(5);
        for (int j = 0; j < w.length; j++) {
            w[j] = (float) rnd.nextGaussian() * 0.02f;
        }
        Hessian h = new Hessian(in);
        float[] eye = new float[in * in];
        for (int i = 0; i < in; i++) {
            eye[i * in + i] = 1;
        }
        h.add(eye, in, 1);
        for (int bits : new int[] {2, 3, 4, 8}) {
            QuantizedMatrix g = new GptqQuantizer(bits, 64, false, false, false, 0.01).quantize(w, out, in, h, "w");
            assertEquals(new RtnQuantizer(bits, 64, false).quantize(w, out, in, "w"), g, bits + "-bit");
        }
    }

    @Test
    void staticGroupsWithActOrderKeepContiguousGroupsAndBeatRtn() {
        int out = 64;
        int in = 256;
        int tokens = 512;
        Random rnd = new Random(9);
        float[] w = new float[out * in];
        for (int j = 0; j < w.length; j++) {
            w[j] = (float) rnd.nextGaussian() * 0.02f;
        }
        float[] x = activations(tokens, in, 3);
        Hessian h = new Hessian(in);
        h.add(x, tokens, 8);
        QuantizedMatrix rtn = new RtnQuantizer(4, 32, false).quantize(w, out, in, "w");
        for (boolean descAct : new boolean[] {false, true}) {
            QuantizedMatrix g = new GptqQuantizer(4, 32, false, descAct, true, 0.01).quantize(w, out, in, h, "w");
            // Static groups: parameters are those of the original weights, i.e. RTN's.
            assertEquals(java.util.Arrays.toString(rtn.scales()), java.util.Arrays.toString(g.scales()));
            assertEquals(java.util.Arrays.toString(rtn.zeros()), java.util.Arrays.toString(g.zeros()));
            assertTrue(outputError(w, g.dequantize(), out, in, x, tokens) < outputError(w, rtn.dequantize(), out, in, x, tokens));
        }
        assertThrows(IllegalArgumentException.class, () -> new GptqQuantizer(4, 32, false, true, false, 0.01));
    }

    @Test
    void deadInputsAreZeroedAndCholeskyIsCorrect() {
        int n = 64;
        Random rnd = new Random(4);
        float[] x = new float[128 * n];
        for (int j = 0; j < x.length; j++) {
            x[j] = j % n == 5 ? 0f : (float) rnd.nextGaussian(); // input 5 never fires
        }
        Hessian h = new Hessian(n);
        h.add(x, 128, 2);
        double[] hm = h.matrix();
        hm[5 * n + 5] = 1;
        double[] u = CholeskyMath.upperCholeskyOfInverse(hm, n, "t");
        // U^T U H = I
        for (int a = 0; a < n; a++) {
            for (int b = 0; b < n; b++) {
                double s = 0;
                for (int k = 0; k < n; k++) {
                    double utu = 0;
                    for (int m = 0; m < n; m++) {
                        utu += u[m * n + a] * u[m * n + k];
                    }
                    s += utu * hm[k * n + b];
                }
                assertEquals(a == b ? 1.0 : 0.0, s, 1e-8);
            }
        }
        float[] w = new float[32 * n];
        java.util.Arrays.fill(w, 0.5f);
        QuantizedMatrix q = new GptqQuantizer(4, 32, false, false, false, 0.01).quantize(w, 32, n, h, "w");
        assertEquals(0f, q.weight(3, 5));
    }
}
