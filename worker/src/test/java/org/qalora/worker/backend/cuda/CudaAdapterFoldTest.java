package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.merge.ZeroPointMerge;
import org.qalora.worker.model.TinyModels;

/**
 * {@link AdapterFold} against its naive reference, the merge ({@link ZeroPointMerge}, double sums on the CPU), across
 * bit widths, group sizes and shapes; then the folded product against the base product plus the separate adapter
 * product, in bf16.
 */
class CudaAdapterFoldTest {
    private static float[] random(SplittableRandom rng, int n, double std) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rng.nextGaussian() * std);
        }
        return x;
    }

    @Test
    void foldedZerosAreTheMergedZeros() {
        try (CudaBackend be = CudaTestSupport.backendOrSkip(Precision.BF16)) {
            SplittableRandom rng = new SplittableRandom(11);
            for (int bits : new int[] {2, 3, 4, 8}) {
                for (int[] s : new int[][] {{64, 128, 32}, {96, 256, 64}, {40, 96, 32}, {8, 1024, 128}}) {
                    int out = s[0], in = s[1], g = s[2], r = 8, groups = in / g;
                    QuantizedMatrix m = TinyModels.randomQuantized(rng, out, in, bits, g, 0.05);
                    QaloraConfig cfg = QaloraConfig.allProjections(r, 16, g, Pooling.MEAN, 0.0);
                    float[] a = random(rng, r * groups, 0.3), b = random(rng, out * r, 0.3);
                    LinearWeight w = be.quantizedWeight(m);
                    assertTrue(be.foldsAdapter(w));
                    float c = (float) cfg.pooling().mergeFactor(cfg.scaling(), in, g);
                    var folded = (CudaLinearWeight.Folded) be.foldAdapter(w, be.upload(a, r, groups),
                            be.upload(b, out, r), c);
                    float[] got = new float[groups * out];
                    be.driver().copyToHost(folded.zeros(), got, 0, got.length);
                    float[] want = ZeroPointMerge.merge(m, a, b, cfg, "w").zeros();
                    double worst = 0;
                    for (int i = 0; i < got.length; i++) {
                        // fp32 B A (r terms) against a double sum: a few fp32 ulps of the zero point
                        double bound = 1e-6 * (1 + Math.abs(want[i])) + 1e-6 * Math.abs(want[i] - m.zeros()[i]);
                        worst = Math.max(worst, Math.abs(got[i] - want[i]) / bound);
                    }
                    assertTrue(worst <= 1, bits + "-bit " + out + "x" + in + " g" + g + ": folded zeros off by "
                            + worst + " bounds");
                }
            }
        }
    }

    @Test
    void foldedProductIsTheBaseProductPlusTheAdapters() {
        try (CudaBackend be = CudaTestSupport.backendOrSkip(Precision.BF16)) {
            SplittableRandom rng = new SplittableRandom(12);
            int n = 64, out = 96, in = 256, g = 32, r = 16, groups = in / g;
            QuantizedMatrix m = TinyModels.randomQuantized(rng, out, in, 4, g, 1 / Math.sqrt(in));
            QaloraConfig cfg = QaloraConfig.allProjections(r, 16, g, Pooling.MEAN, 0.0);
            float s = (float) cfg.scaling(), f = cfg.pooling().poolFactor(in, g);
            LinearWeight w = be.quantizedWeight(m);
            Tensor x = be.upload(random(rng, n * in, 1), n, in), a = be.upload(random(rng, r * groups, 0.5), r, groups),
                    b = be.upload(random(rng, out * r, 0.5), out, r);
            Tensor pooled = be.allocate(n, groups), u = be.allocate(n, r), separate = be.allocate(n, out),
                    folded = be.allocate(n, out);
            be.linear(x, w, separate);
            be.groupPool(x, g, f, pooled);
            be.matmulNT(pooled, a, u, s);
            be.matmulNT(u, b, separate, true);                          // x W^T + s (f groupsum(x) A^T) B^T
            be.linear(x, be.foldAdapter(w, a, b, s * f), folded);       // x W'^T
            double err = MergeCheck.relativeError(be.download(folded), be.download(separate));
            // bf16 operands on both sides (x, the dequantized weight, u): a few 2^-9 roundings
            assertTrue(err <= 1e-2, "folded vs separate adapter product: relative error " + err);
            be.foldAdapters(false);
            assertFalse(be.foldsAdapter(w), "foldAdapters(false) turns the fold off");
        }
        try (CudaBackend fp32 = CudaTestSupport.backendOrSkip(Precision.FP32)) {
            SplittableRandom rng = new SplittableRandom(13);
            assertFalse(fp32.foldsAdapter(fp32.quantizedWeight(TinyModels.randomQuantized(rng, 8, 64, 4, 32, 0.1))),
                    "fp32 keeps the adapter products apart, as the CPU and the HF reference do");
        }
    }
}
