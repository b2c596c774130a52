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
import org.qalora.worker.backend.IntTensor;
import org.qalora.worker.backend.KvCacheShape;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.TinyModels;

/**
 * The fused decode products ({@link CudaFusedDecode}: q/k/v in one launch, the residual add and SwiGLU folded into
 * the GEMV) write the same bits as the separate calls they replace (linear, add, swiglu on the same GPU: what
 * {@link Backend}'s default implementations run), for every bit width, aligned and unaligned group sizes, output
 * widths in fours (the split-K GEMV, one split and three) and not (the slice GEMV), and q/k/v launches mixing both; with two rows (no fusion) the calls still equal the separate ones. The same for the rotary
 * embedding and cache write of a decode step (one launch for rope, rope and two cache writes). Skipped without a GPU.
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
        // {in, hidden, kv, ffn}: inputs are a multiple of 32. The first: one input split, k/v and ffn widths that the
        // split-K GEMV does not take (not in fours); the second: three splits (36 chunks of 32), every width in fours.
        for (int[] dims : new int[][] {{384, 160, 67, 259}, {1152, 256, 132, 516}}) {
            for (int bits : new int[] {2, 3, 4, 8}) {
                for (int group : new int[] {32, 128, 48}) {
                    for (int rows : new int[] {1, 2}) {
                        fusedProductsMatch(dims, bits, group, rows);
                    }
                }
            }
        }
    }

    private void fusedProductsMatch(int[] dims, int bits, int group, int rows) {
        String what = bits + " bits, group " + group + ", " + rows + " rows, in " + dims[0];
        int in = dims[0], hidden = dims[1], kv = dims[2], ffn = dims[3];
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

        for (boolean fp32Stream : new boolean[] {true, false}) {     // the decode's stream is fp32
            Tensor r = fp32Stream ? bf16.upload(bf16.download(residual), rows, in) : residual;
            Tensor outFused = fp32Stream ? bf16.allocate(rows, in) : empty(rows, in);
            Tensor outApart = fp32Stream ? bf16.allocate(rows, in) : empty(rows, in);
            bf16.linearPlusResidual(attn, o, r, empty(rows, in), outFused);
            Tensor product = empty(rows, in);
            bf16.linear(attn, o, product);
            bf16.add(r, product, outApart);
            assertArrayEquals(bf16.download(outApart), bf16.download(outFused), "o + residual, "
                    + (fp32Stream ? "fp32" : "bf16") + " stream, " + what);
        }

        Tensor actFused = empty(rows, ffn), actApart = empty(rows, ffn);
        bf16.swigluOfLinears(x, gate, up, empty(rows, ffn), empty(rows, ffn), actFused);
        Tensor g = empty(rows, ffn), u = empty(rows, ffn);
        bf16.linear(x, gate, g);
        bf16.linear(x, up, u);
        bf16.swiglu(g, u, actApart);
        assertArrayEquals(bf16.download(actApart), bf16.download(actFused), "swiglu(gate, up), " + what);
    }

    @Test
    void ropeAndCacheWriteInOneLaunchWriteTheBitsOfTheFourCalls() {
        int heads = 4, kvHeads = 2, headDim = 16, capacity = 9;
        for (boolean bf16Cache : new boolean[] {true, false}) {
            for (int rows : new int[] {1, 3}) {
                KvCacheShape shape = new KvCacheShape(3, capacity, heads, kvHeads, headDim);
                Tensor cos = table(rows, headDim / 2), sin = table(rows, headDim / 2);
                Tensor q1 = activation(rows, heads * headDim), k1 = activation(rows, kvHeads * headDim),
                        v = activation(rows, kvHeads * headDim);
                Tensor q2 = copyOf(q1), k2 = copyOf(k1);
                Tensor[] fused = {cache(shape, bf16Cache), cache(shape, bf16Cache)};
                Tensor[] apart = {cache(shape, bf16Cache), cache(shape, bf16Cache)};
                IntTensor cacheRows = bf16.allocateInts(2 * rows);
                int[] where = new int[2 * rows];
                for (int n = 0; n < rows; n++) {
                    where[n] = (n * 2) % 3;                 // sequences
                    where[rows + n] = (5 + 3 * n) % capacity; // positions
                }
                bf16.writeInts(cacheRows, where);
                bf16.ropeAndWriteCache(q1, k1, v, cos, sin, rows, heads, kvHeads, headDim, fused[0], fused[1], shape,
                        cacheRows);
                bf16.rope(q2, cos, sin, rows, heads, headDim);
                bf16.rope(k2, cos, sin, rows, kvHeads, headDim);
                bf16.writeCacheRows(k2, apart[0], shape, cacheRows);
                bf16.writeCacheRows(v, apart[1], shape, cacheRows);
                String what = rows + " rows, " + (bf16Cache ? "bf16" : "fp32") + " cache";
                assertArrayEquals(bf16.download(q2), bf16.download(q1), "rotated q, " + what);
                assertArrayEquals(bf16.download(k2), bf16.download(k1), "rotated k, " + what);
                assertArrayEquals(bf16.download(apart[0]), bf16.download(fused[0]), "key cache, " + what);
                assertArrayEquals(bf16.download(apart[1]), bf16.download(fused[1]), "value cache, " + what);
            }
        }
    }

    private Tensor table(int rows, int cols) {
        Tensor t = bf16.allocate(rows, cols);
        bf16.write(t, TinyModels.gaussian(rng, rows * cols, 1.0));
        return t;
    }

    private Tensor copyOf(Tensor t) {
        Tensor c = bf16.allocateActivation(t.rows(), t.cols());
        bf16.copy(t, c);
        return c;
    }

    private Tensor cache(KvCacheShape shape, boolean asBf16) {
        return asBf16 ? bf16.allocateActivation(shape.rows(), shape.kvWidth()) : bf16.allocate(shape.rows(),
                shape.kvWidth());
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
