package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qalora.quant.QuantizedMatrix;

/**
 * The blocked GPTQ (128-column blocks, lazy updates, Vector API products) against the textbook algorithm: after
 * each column, push its error into <em>every</em> later column at once, in double. With group parameters that do
 * not depend on the order of updates (static groups, or one group per block), the two are the same computation
 * up to float rounding.
 */
class NaiveGptqTest {
    /** Textbook GPTQ on fixed group parameters; returns codes {@code [out, in]}. */
    static int[] naive(float[] weight, int out, int in, double[] u, float[] scales, float[] zeros, int group, int maxq) {
        double[] w = new double[weight.length];  // [O, I]
        for (int j = 0; j < w.length; j++) {
            w[j] = weight[j];
        }
        int[] codes = new int[out * in];
        for (int i = 0; i < in; i++) {
            int k = i / group;
            for (int o = 0; o < out; o++) {
                float s = scales[k * out + o];
                float z = zeros[k * out + o];
                int c = MinMaxParams.code((float) w[o * in + i], s, z, maxq);
                codes[o * in + i] = c;
                double e = (w[o * in + i] - MinMaxParams.dequantize(c, s, z)) / u[i * in + i];
                for (int j = i + 1; j < in; j++) {
                    w[o * in + j] -= e * u[i * in + j];
                }
            }
        }
        return codes;
    }

    @ParameterizedTest(name = "{0}x{1} {2}-bit g{3}")
    @CsvSource({"32, 256, 4, 32", "64, 384, 3, 64", "32, 320, 2, 32", "64, 256, 8, 128"})
    void blockedStaticGroupsEqualTheTextbookAlgorithm(int out, int in, int bits, int group) {
        Random rnd = new Random(in + bits);
        float[] w = new float[out * in];
        for (int j = 0; j < w.length; j++) {
            w[j] = (float) rnd.nextGaussian() * 0.03f;
        }
        int tokens = 3 * in;
        float[] x = GptqQuantizerTest.activations(tokens, in, out);
        Hessian h = new Hessian(in);
        h.add(x, tokens, 3);
        GptqQuantizer blocked = new GptqQuantizer(bits, group, false, false, true, 0.01);
        QuantizedMatrix fast = blocked.quantize(w, out, in, h, "w");

        // Same damping and factor as the quantizer, computed independently here.
        double[] hm = h.matrix();
        double mean = 0;
        for (int i = 0; i < in; i++) {
            mean += hm[i * in + i];
        }
        for (int i = 0; i < in; i++) {
            hm[i * in + i] += 0.01 * mean / in;
        }
        double[] u = CholeskyMath.upperCholeskyOfInverse(hm, in, "w");
        QuantizedMatrix rtn = new RtnQuantizer(bits, group, false).quantize(w, out, in, "w"); // static groups = RTN's params
        assertArrayEquals(rtn.scales(), fast.scales());
        int[] expected = naive(w, out, in, u, rtn.scales(), rtn.zeros(), group, (1 << bits) - 1);
        int[] actual = fast.codes();
        int same = 0;
        for (int j = 0; j < expected.length; j++) {
            same += expected[j] == actual[j] ? 1 : 0;
        }
        // Only values within float rounding of a rounding boundary may differ.
        assertTrue(same >= 0.995 * expected.length, same + " of " + expected.length + " codes agree");
        double eFast = GptqQuantizerTest.outputError(w, fast.dequantize(), out, in, x, tokens);
        double eNaive = GptqQuantizerTest.outputError(w,
                QuantizedMatrix.fromCodes(out, in, bits, group, expected, rtn.scales(), rtn.zeros()).dequantize(),
                out, in, x, tokens);
        assertEquals(eNaive, eFast, 0.01 * eNaive);
    }
}
