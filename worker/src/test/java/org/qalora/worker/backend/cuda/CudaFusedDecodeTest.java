package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.TinyModels;

/**
 * The fused decode products ({@link CudaFusedDecode}: q/k/v in one launch, the residual add and SwiGLU folded into
 * the GEMV) write the same bits as the separate calls they replace (linear, add, swiglu on the same GPU: what
 * {@link Backend}'s default implementations run), for every bit width, aligned and unaligned group sizes and output widths that are not multiples
 * of the 32-column block; with two rows (no fusion) the calls still equal the separate ones. Skipped without a GPU.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CudaFusedDecodeTest {
    private CudaBackend bf16;
    private final SplittableRandom rng = new SplittableRandom(5);

    @BeforeAll
    void open() {
        CudaTestSupport.backendOrSkip(Precision.FP32).close();
        bf16 = new CudaBackend(0, Precision.BF16);
    }

    @AfterAll
    void close() {
        if (bf16 != null) {
            bf16.close();
        }
    }

    @Test
    void fusedProductsWriteTheBitsOfTheSeparateCalls() {
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int group : new int[] {32, 128, 48}) {
                for (int rows : new int[] {1, 2}) {
                    String what = bits + " bits, group " + group + ", " + rows + " rows";
                    int in = 384, hidden = 131, kv = 67, ffn = 259;
                    LinearWeight q = weight(hidden, in, bits, group), k = weight(kv, in, bits, group),
                            v = weight(kv, in, bits, group), o = weight(in, hidden, bits, 32),
                            gate = weight(ffn, in, bits, group), up = weight(ffn, in, bits, group);
                    Tensor x = activation(rows, in), attn = activation(rows, hidden), residual = activation(rows, in);

                    Tensor[] fused = {empty(rows, hidden), empty(rows, kv), empty(rows, kv)};
                    Tensor[] apart = {empty(rows, hidden), empty(rows, kv), empty(rows, kv)};
                    bf16.linears(x, List.of(q, k, v), List.of(fused));
                    bf16.linear(x, q, apart[0]);
                    bf16.linear(x, k, apart[1]);
                    bf16.linear(x, v, apart[2]);
                    for (int t = 0; t < 3; t++) {
                        assertArrayEquals(bf16.download(apart[t]), bf16.download(fused[t]), "q/k/v " + t + ", " + what);
                    }

                    Tensor outFused = empty(rows, in), outApart = empty(rows, in);
                    bf16.linearPlusResidual(attn, o, residual, empty(rows, in), outFused);
                    Tensor product = empty(rows, in);
                    bf16.linear(attn, o, product);
                    bf16.add(residual, product, outApart);
                    assertArrayEquals(bf16.download(outApart), bf16.download(outFused), "o + residual, " + what);

                    Tensor actFused = empty(rows, ffn), actApart = empty(rows, ffn);
                    bf16.swigluOfLinears(x, gate, up, empty(rows, ffn), empty(rows, ffn), actFused);
                    Tensor g = empty(rows, ffn), u = empty(rows, ffn);
                    bf16.linear(x, gate, g);
                    bf16.linear(x, up, u);
                    bf16.swiglu(g, u, actApart);
                    assertArrayEquals(bf16.download(actApart), bf16.download(actFused), "swiglu(gate, up), " + what);
                }
            }
        }
    }

    private LinearWeight weight(int out, int in, int bits, int group) {
        QuantizedMatrix m = TinyModels.randomQuantized(rng, out, in, bits, group, 0.05);
        return bf16.quantizedWeight(m);
    }

    private Tensor activation(int rows, int cols) {
        Tensor t = bf16.allocateActivation(rows, cols);
        bf16.write(t, TinyModels.gaussian(rng, rows * cols, 1.0));
        return t;
    }

    private Tensor empty(int rows, int cols) {
        return bf16.allocateActivation(rows, cols);
    }
}
