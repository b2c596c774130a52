package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.QuantKernelModule;
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
 * embedding and cache write of a decode step (one launch for rope, rope and two cache writes), for q/k/v + RoPE + cache
 * write in one launch, and for a product + residual + the next RMSNorm in one launch; those two tests also check that
 * the fused launch ran (rather than the fallback). Skipped without a GPU.
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

    @Test
    void productResidualAndNextNormInOneLaunchWriteTheBitsOfTheSeparateCalls() {
        CudaFusedDecode direct = new CudaFusedDecode(QuantKernelModule.get(0), true);
        // {out, in}: one split and a partial last tile (132 = 128 + 4); several splits and tiles (1152 = 9 x 128)
        for (int[] dims : new int[][] {{132, 256}, {1152, 1152}, {516, 2048}}) {
            for (int bits : new int[] {2, 3, 4, 8}) {
                for (boolean fp32Stream : new boolean[] {true, false}) {
                    for (boolean bf16Normed : new boolean[] {true, false}) {
                        for (int rows : new int[] {1, 2}) {
                            residualNormMatches(direct, dims[0], dims[1], bits, fp32Stream, bf16Normed, rows);
                        }
                    }
                }
            }
        }
    }

    private void residualNormMatches(CudaFusedDecode direct, int out, int in, int bits, boolean fp32Stream,
                                     boolean bf16Normed, int rows) {
        String what = bits + " bits, " + out + " x " + in + ", " + (fp32Stream ? "fp32" : "bf16") + " stream, "
                + (bf16Normed ? "bf16" : "fp32") + " norm, " + rows + " rows";
        LinearWeight w = weight(out, in, bits, 32);
        Tensor x = activation(rows, in), norm = table(1, out);
        Tensor residual = fp32Stream ? bf16.upload(TinyModels.gaussian(rng, rows * out, 1.0), rows, out)
                : activation(rows, out);
        Tensor[] fused = {stream(rows, out, fp32Stream), normed(rows, out, bf16Normed), bf16.allocate(rows, 1)};
        Tensor[] apart = {stream(rows, out, fp32Stream), normed(rows, out, bf16Normed), bf16.allocate(rows, 1)};
        if (rows == 1) {   // the fused launch itself, not a fallback: its answer says it ran
            assertTrue(direct.linearPlusResidualNorm((CudaTensor) x, w, (CudaTensor) residual,
                    (CudaTensor) empty(rows, out), (CudaTensor) fused[0], (CudaTensor) norm, 1e-5f,
                    (CudaTensor) fused[1], (CudaTensor) fused[2]), "one launch for " + what);
        } else {
            bf16.linearPlusResidualNorm(x, w, residual, empty(rows, out), fused[0], norm, 1e-5f, fused[1], fused[2]);
        }
        Tensor product = empty(rows, out);
        bf16.linear(x, w, product);
        bf16.add(residual, product, apart[0]);
        bf16.rmsNorm(apart[0], norm, 1e-5f, apart[1], apart[2]);
        String[] names = {"out", "normed", "rstd"};
        for (int t = 0; t < 3; t++) {
            assertArrayEquals(bf16.download(apart[t]), bf16.download(fused[t]), names[t] + ", " + what);
        }
    }

    @Test
    void productsRopeAndCacheWriteInOneLaunchWriteTheBitsOfTheSeparateCalls() {
        CudaFusedDecode direct = new CudaFusedDecode(QuantKernelModule.get(0), true);
        // {heads, kvHeads, headDim, in}: a head per 128-column tile, two, four (with a partial last tile: 5 x 32 =
        // 160 columns), eight and sixteen; and a head width the fused launch does not take (48: not a power of two)
        for (int[] dims : new int[][] {{4, 2, 128, 256}, {6, 2, 64, 1152}, {5, 5, 32, 512}, {8, 4, 16, 256},
                {16, 8, 8, 256}, {4, 2, 48, 256}}) {
            for (int bits : new int[] {2, 3, 4, 8}) {
                for (boolean bf16Cache : new boolean[] {true, false}) {
                    ropeMatches(direct, dims, bits, bf16Cache, dims[2] != 48);
                }
            }
        }
    }

    private void ropeMatches(CudaFusedDecode direct, int[] dims, int bits, boolean bf16Cache, boolean fusable) {
        int heads = dims[0], kvHeads = dims[1], headDim = dims[2], in = dims[3], capacity = 7;
        String what = heads + "/" + kvHeads + " heads of " + headDim + ", in " + in + ", " + bits + " bits, "
                + (bf16Cache ? "bf16" : "fp32") + " cache";
        KvCacheShape shape = new KvCacheShape(2, capacity, heads, kvHeads, headDim);
        List<LinearWeight> qkv = List.of(weight(heads * headDim, in, bits, 32), weight(kvHeads * headDim, in, bits, 32),
                weight(kvHeads * headDim, in, bits, 32));
        Tensor x = activation(1, in), cos = table(1, headDim / 2), sin = table(1, headDim / 2);
        IntTensor cacheRows = bf16.allocateInts(2);
        bf16.writeInts(cacheRows, new int[] {1, 4});           // sequence 1, position 4
        Tensor[] fused = {empty(1, heads * headDim), empty(1, kvHeads * headDim), empty(1, kvHeads * headDim),
                cache(shape, bf16Cache), cache(shape, bf16Cache)};
        Tensor[] apart = {empty(1, heads * headDim), empty(1, kvHeads * headDim), empty(1, kvHeads * headDim),
                cache(shape, bf16Cache), cache(shape, bf16Cache)};
        assertEquals(fusable, direct.linearsRopeAndWriteCache((CudaTensor) x, qkv,
                List.of((CudaTensor) fused[0], (CudaTensor) fused[1], (CudaTensor) fused[2]), (CudaTensor) cos,
                (CudaTensor) sin, 1, heads, kvHeads, headDim, (CudaTensor) fused[3], (CudaTensor) fused[4], shape,
                (CudaInts) cacheRows), "one launch for " + what);
        if (!fusable) {
            bf16.linearsRopeAndWriteCache(x, qkv, fused[0], fused[1], fused[2], cos, sin, 1, heads, kvHeads, headDim,
                    fused[3], fused[4], shape, cacheRows);
        }
        bf16.linears(x, qkv, List.of(apart[0], apart[1], apart[2]));
        bf16.rope(apart[0], cos, sin, 1, heads, headDim);
        bf16.rope(apart[1], cos, sin, 1, kvHeads, headDim);
        bf16.writeCacheRows(apart[1], apart[3], shape, cacheRows);
        bf16.writeCacheRows(apart[2], apart[4], shape, cacheRows);
        String[] names = {"rotated q", "rotated k", "v", "key cache", "value cache"};
        for (int t = 0; t < 5; t++) {
            assertArrayEquals(bf16.download(apart[t]), bf16.download(fused[t]), names[t] + ", " + what);
        }
    }

    private Tensor stream(int rows, int cols, boolean fp32) {
        return fp32 ? bf16.allocate(rows, cols) : empty(rows, cols);
    }

    private Tensor normed(int rows, int cols, boolean asBf16) {
        return asBf16 ? empty(rows, cols) : bf16.allocate(rows, cols);
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
