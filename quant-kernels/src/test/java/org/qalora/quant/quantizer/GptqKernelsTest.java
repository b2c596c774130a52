package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.ReferenceDenseKernels;
import org.qalora.quant.kernels.VectorDenseKernels;

/** The fast paths (Vector API products for X^T X and the lazy block update) against naive references. */
class GptqKernelsTest {
    @ParameterizedTest(name = "in={0}, tokens={1}")
    @CsvSource({"32, 7", "96, 50", "200, 130"})
    void hessianMatchesAnExactSum(int in, int tokens) {
        float[] x = GptqQuantizerTest.activations(2 * tokens, in, in);
        Hessian fast = new Hessian(in);
        fast.add(java.util.Arrays.copyOfRange(x, 0, tokens * in), tokens, 1);
        fast.add(java.util.Arrays.copyOfRange(x, tokens * in, 2 * tokens * in), tokens, 2);
        double[] h = fast.matrix();
        for (int a = 0; a < in; a++) {
            for (int b = 0; b < in; b++) {
                double exact = 0;
                for (int t = 0; t < 2 * tokens; t++) {
                    exact += (double) x[t * in + a] * x[t * in + b];
                }
                exact *= 2.0 / 3; // three sequences in all
                double scale = Math.sqrt(h[a * in + a] * h[b * in + b]);
                assertEquals(exact, h[a * in + b], 1e-5 * scale + 1e-12, "H[" + a + "," + b + "]");
            }
        }
    }

    /** Vector and naive kernels differ only in float rounding order: same output error, almost the same codes. */
    @ParameterizedTest(name = "{0}x{1} {2}-bit g{3}")
    @CsvSource({"64, 256, 4, 32", "96, 384, 3, 64", "32, 160, 2, 32", "64, 128, 8, 128"})
    void vectorKernelsAgreeWithTheReference(int out, int in, int bits, int group) {
        Random rnd = new Random(out * 31L + in);
        float[] w = new float[out * in];
        for (int j = 0; j < w.length; j++) {
            w[j] = (float) rnd.nextGaussian() * 0.05f;
        }
        int tokens = 2 * in;
        float[] x = GptqQuantizerTest.activations(tokens, in, bits);
        Hessian hFast = new Hessian(in);
        Hessian hRef = new Hessian(in, new ReferenceDenseKernels());
        hFast.add(x, tokens, 4);
        hRef.add(x, tokens, 4);
        QuantizedMatrix fast = new GptqQuantizer(bits, group, false, false, false, 0.01, new VectorDenseKernels())
                .quantize(w, out, in, hFast, "w");
        QuantizedMatrix ref = new GptqQuantizer(bits, group, false, false, false, 0.01, new ReferenceDenseKernels())
                .quantize(w, out, in, hRef, "w");
        int[] cf = fast.codes();
        int[] cr = ref.codes();
        int same = 0;
        for (int j = 0; j < cf.length; j++) {
            same += cf[j] == cr[j] ? 1 : 0;
        }
        assertTrue(same >= 0.99 * cf.length, same + " of " + cf.length + " codes agree");
        double ef = GptqQuantizerTest.outputError(w, fast.dequantize(), out, in, x, tokens);
        double er = GptqQuantizerTest.outputError(w, ref.dequantize(), out, in, x, tokens);
        assertEquals(er, ef, 0.02 * er);
    }
}
