package org.qalora.quant.kernels;

import static org.qalora.quant.kernels.BlockedQuantWeight.QB;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.qalora.quant.QuantizedMatrix;

/**
 * Vector API low-bit kernels on the {@link BlockedQuantWeight} layout.
 *
 * <ul>
 *   <li>{@link #matmul} and {@link #matmulTransposed}: the {@link Gemm} sgemm with a B packer that dequantizes a
 *       {@code KC x 64} tile of W into an L1-resident float micro-panel once and reuses it for every token of the
 *       call (dequantization is amortised over the tokens; the FMA micro-kernel is the same as the dense one).
 *       The transposed product dequantizes a 64 x 64 tile along the output dimension, then transposes it.</li>
 *   <li>{@link #gemv}: one token, memory-bound: reads each code word once, sums {@code code * x} per group and
 *       applies {@code scale * (sum - zero * sum(x))} at the group's end.</li>
 * </ul>
 * Every task is one block of 64 output columns (or of 64 inputs for the transposed product), computed in a fixed
 * order: results are bit-identical across runs and thread counts.
 */
public final class VectorQuantKernels implements QuantKernels {
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final int L = Simd.LANES;
    /** Below this many tokens a multiply is a loop of GEMVs: too few tokens to amortise a dequantized tile. */
    static final int GEMM_MIN_TOKENS = 4;
    /** At most this many micro-kernel row panels (~516 tokens) share one dequantized tile. */
    private static final int MAX_PANELS_PER_TASK = 86;

    static {
        if (Gemm.KC % QB != 0 || QB % Gemm.NB != 0) {
            throw new AssertionError("KC must be a multiple of QB, and QB of NB");
        }
    }

    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[QB * QB]);

    private final KernelPool pool;

    /** On the process-wide {@link KernelPool#shared()} pool. */
    public VectorQuantKernels() {
        this(KernelPool.shared());
    }

    public VectorQuantKernels(KernelPool pool) {
        this.pool = pool;
    }

    @Override
    public PreparedWeight prepare(QuantizedMatrix m) {
        return BlockedQuantWeight.of(m);
    }

    @Override
    public PreparedWeight withZeros(PreparedWeight w, float[] zeros) {
        return blocked(w).withZeros(zeros);
    }

    private static BlockedQuantWeight blocked(PreparedWeight w) {
        if (!(w instanceof BlockedQuantWeight b)) {
            throw new IllegalArgumentException("weight " + w + " was prepared by another QuantKernels"
                    + " implementation; prepare it with VectorQuantKernels");
        }
        return b;
    }

    @Override
    public void matmul(PreparedWeight prepared, float[] x, int xOff, int tokens, float[] y, int yOff) {
        BlockedQuantWeight w = blocked(prepared);
        Checks.tokens(tokens);
        Checks.matrix("x", x, xOff, tokens, w.in, w.in);
        Checks.matrix("y", y, yOff, tokens, w.out, w.out);
        if (tokens < GEMM_MIN_TOKENS) {
            for (int t = 0; t < tokens; t++) {
                gemvChecked(w, x, xOff + t * w.in, y, yOff + t * w.out);
            }
            return;
        }
        float[] ap = Gemm.packRowMajorA(pool, x, xOff, w.in, tokens, w.in);
        Gemm.multiply(pool, tokens, w.out, w.in, ap, (k0, kc, j0, nc, dst) -> {
            // B'[i, o] = W[o, i]: rows of the tile are inputs, dequantized along the output columns.
            for (int p = 0; p < kc; p++) {
                w.dequantizeRow(j0 / QB, k0 + p, dst, p * Gemm.NB, kc * Gemm.NB);
            }
        }, QB, panelsPerTask(tokens, w.blocks), y, yOff, w.out, false);
    }

    @Override
    public void matmulTransposed(PreparedWeight prepared, float[] dy, int dyOff, int tokens, float[] dx, int dxOff,
                                 boolean accumulate) {
        BlockedQuantWeight w = blocked(prepared);
        Checks.tokens(tokens);
        Checks.matrix("dy", dy, dyOff, tokens, w.out, w.out);
        Checks.matrix("dx", dx, dxOff, tokens, w.in, w.in);
        float[] ap = Gemm.packRowMajorA(pool, dy, dyOff, w.out, tokens, w.out);
        Gemm.multiply(pool, tokens, w.in, w.out, ap,
                (k0, kc, j0, nc, dst) -> packTransposedTile(w, k0, kc, j0, nc, dst),
                QB, panelsPerTask(tokens, (w.in + QB - 1) / QB), dx, dxOff, w.in, accumulate);
    }

    /**
     * B'[o, i] = W[o, i] for o in [k0, k0+kc), i in [j0, j0+nc): per 64 outputs, dequantize the 64 x 64 tile
     * along o (the fast direction of the layout) into [i][o], then transpose it into the micro-panels.
     */
    private static void packTransposedTile(BlockedQuantWeight w, int k0, int kc, int j0, int nc, float[] dst) {
        float[] tile = TILE.get(); // [QB inputs][QB outputs]
        int nb = Gemm.NB;
        int panelsUsed = (nc + nb - 1) / nb;
        for (int o0 = k0; o0 < k0 + kc; o0 += QB) { // k0 is a multiple of KC, hence of QB
            int block = o0 / QB;
            for (int ii = 0; ii < nc; ii++) {
                w.dequantizeRow(block, j0 + ii, tile, ii * QB, nb);
            }
            int rows = Math.min(QB, k0 + kc - o0);
            for (int oo = 0; oo < rows; oo++) {
                int p = o0 - k0 + oo;
                for (int sub = 0; sub < panelsUsed; sub++) {
                    int d = sub * kc * nb + p * nb;
                    int cols = Math.min(nb, nc - sub * nb);
                    for (int j = 0; j < cols; j++) {
                        dst[d + j] = tile[(sub * nb + j) * QB + oo];
                    }
                    for (int j = cols; j < nb; j++) {
                        dst[d + j] = 0f;
                    }
                }
            }
        }
    }

    /** All tokens in one row range (one dequantization per tile) unless there are few column blocks to share. */
    private int panelsPerTask(int tokens, int colBlocks) {
        int panels = Gemm.panels(tokens);
        int rowBlocks = Math.max((panels + MAX_PANELS_PER_TASK - 1) / MAX_PANELS_PER_TASK,
                Math.min(panels, (2 * pool.threads() + colBlocks - 1) / colBlocks));
        return (panels + rowBlocks - 1) / rowBlocks;
    }

    @Override
    public void gemv(PreparedWeight prepared, float[] x, int xOff, float[] y, int yOff) {
        BlockedQuantWeight w = blocked(prepared);
        Checks.matrix("x", x, xOff, 1, w.in, w.in);
        Checks.matrix("y", y, yOff, 1, w.out, w.out);
        gemvChecked(w, x, xOff, y, yOff);
    }

    /**
     * The integer path of {@link Int8ActivationGemv} where the layout allows it (2/3/4-bit codes, groups of a
     * multiple of 32), else the exact kernel on the rounded x; either way {@code W · x̂} up to float rounding.
     */
    @Override
    public void gemvInt8Activations(PreparedWeight prepared, float[] x, int xOff, float[] y, int yOff) {
        BlockedQuantWeight w = blocked(prepared);
        Checks.matrix("x", x, xOff, 1, w.in, w.in);
        Checks.matrix("y", y, yOff, 1, w.out, w.out);
        Int8Activations q = Int8Activations.quantize(x, xOff, w.in);
        if (!Int8ActivationGemv.usesIntegerPath(w)) {
            gemvChecked(w, q.dequantized(), 0, y, yOff);
            return;
        }
        int[] pairs = Int8ActivationGemv.pairs(q, w.laneBits); // [I/2]
        float[] groupSums = Int8ActivationGemv.groupSums(q, w.groupSize); // [G]
        if ((long) w.in * w.out < Gemm.PARALLEL_MIN_MACS) {
            for (int b = 0; b < w.blocks; b++) {
                Int8ActivationGemv.block(w, b, pairs, q.scales, groupSums, y, yOff);
            }
        } else {
            pool.run(w.blocks, b -> Int8ActivationGemv.block(w, b, pairs, q.scales, groupSums, y, yOff));
        }
    }

    private void gemvChecked(BlockedQuantWeight w, float[] x, int xOff, float[] y, int yOff) {
        float[] groupSums = new float[w.groups]; // [G]: sum of x over each group, for the zero-point term
        for (int g = 0; g < w.groups; g++) {
            float s = 0;
            for (int i = g * w.groupSize; i < (g + 1) * w.groupSize; i++) {
                s += x[xOff + i];
            }
            groupSums[g] = s;
        }
        float[] scaledX = scaledInputs(w, x, xOff); // [I]
        if ((long) w.in * w.out < Gemm.PARALLEL_MIN_MACS) {
            for (int b = 0; b < w.blocks; b++) {
                gemvBlock(w, b, scaledX, groupSums, y, yOff);
            }
        } else {
            pool.run(w.blocks, b -> gemvBlock(w, b, scaledX, groupSums, y, yOff));
        }
    }

    /**
     * x[i] divided by the place value of i's code in its word, {@code 2^(bits * (i % perWord))}, except for the
     * top code of each word. Then {@code (word & (mask << shift))} converted to float is exactly {@code code *
     * 2^shift}, and multiplying it by the scaled x gives exactly {@code code * x}: the shift is saved (a third
     * of the integer work of GEMV). The top code, whose field may hold the sign bit, is shifted down instead.
     * Exact unless |x| < 2^-96 (the scaled value would be subnormal), where the term is negligible anyway.
     * Only groups narrower than a word use x as it is.
     */
    private static float[] scaledInputs(BlockedQuantWeight w, float[] x, int xOff) {
        float[] scaled = new float[w.in];
        int perWord = 32 / w.laneBits;
        boolean packed = gemvUsesWords(w);
        for (int i = 0; i < w.in; i++) {
            int j = i % perWord;
            scaled[i] = packed && j < perWord - 1 ? Math.scalb(x[xOff + i], -w.laneBits * j) : x[xOff + i];
        }
        return scaled;
    }

    private static boolean gemvUsesWords(BlockedQuantWeight w) {
        return w.groupSize % (32 / w.laneBits) == 0;
    }

    /**
     * y[b*QB .. b*QB+QB) for one block, four vectors of columns at a time (the broadcast of x is shared by the
     * four). Per group: {@code dot = sum code * x}, then {@code y += scale * (dot - zero * sum x)}, which is
     * {@code sum scale * (code - zero) * x} over the group with the zero point factored out. One method per code
     * layout keeps each small enough for C2 to compile every vector operation into registers.
     */
    private static void gemvBlock(BlockedQuantWeight w, int b, float[] xs, float[] groupSums, float[] y, int yOff) {
        if (gemvUsesWords(w)) {
            gemvBlockWords(w, b, xs, groupSums, y, yOff);
        } else {
            gemvBlockAnyLayout(w, b, xs, groupSums, y, yOff);
        }
    }

    /** Whole words per group (every width at the usual group sizes): mask each code in place (see scaledInputs). */
    private static void gemvBlockWords(BlockedQuantWeight w, int b, float[] xs, float[] groupSums, float[] y,
                                          int yOff) {
        int perWord = 32 / w.laneBits;
        int top = perWord - 1;
        int topShift = 32 - w.laneBits;
        int codeBase = b * w.packedRows * QB;
        for (int col = 0; col < QB; col += 4 * L) {
            if (b * QB + col >= w.out) {
                break;
            }
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            FloatVector acc2 = FloatVector.zero(F), acc3 = FloatVector.zero(F);
            for (int g = 0; g < w.groups; g++) {
                int i0 = g * w.groupSize;
                FloatVector d0 = FloatVector.zero(F), d1 = FloatVector.zero(F);
                FloatVector d2 = FloatVector.zero(F), d3 = FloatVector.zero(F);
                // Two sets of accumulators, for even and odd word rows: the FMA chains are half as long, so
                // the loop is not bound by FMA latency.
                // The word-row body below is written out three times (even, odd, tail) on purpose: moved into a
                // helper that takes or returns vectors, C2 sometimes does not inline it and the Vector API then
                // boxes every vector; that made this GEMV 40x slower in one measured run (docs/PERFORMANCE.md).
                FloatVector e0 = FloatVector.zero(F), e1 = FloatVector.zero(F);
                FloatVector e2 = FloatVector.zero(F), e3 = FloatVector.zero(F);
                int rowEnd = (i0 + w.groupSize) / perWord;
                int r = i0 / perWord;
                for (; r + 1 < rowEnd; r += 2) {
                    {
                        int at = codeBase + (r) * QB + col;
                        IntVector w0 = IntVector.fromArray(Simd.INT, w.codes, at);
                        IntVector w1 = IntVector.fromArray(Simd.INT, w.codes, at + L);
                        IntVector w2 = IntVector.fromArray(Simd.INT, w.codes, at + 2 * L);
                        IntVector w3 = IntVector.fromArray(Simd.INT, w.codes, at + 3 * L);
                        int xi = (r) * perWord;
                        for (int j = 0; j < top; j++) {
                            int field = w.mask << (w.laneBits * j);
                            FloatVector xv = FloatVector.broadcast(F, xs[xi + j]);
                            d0 = ((FloatVector) w0.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d0);
                            d1 = ((FloatVector) w1.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d1);
                            d2 = ((FloatVector) w2.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d2);
                            d3 = ((FloatVector) w3.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d3);
                        }
                        FloatVector xt = FloatVector.broadcast(F, xs[xi + top]);
                        d0 = ((FloatVector) w0.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, d0);
                        d1 = ((FloatVector) w1.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, d1);
                        d2 = ((FloatVector) w2.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, d2);
                        d3 = ((FloatVector) w3.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, d3);
                    }
                    {
                        int at = codeBase + (r + 1) * QB + col;
                        IntVector w0 = IntVector.fromArray(Simd.INT, w.codes, at);
                        IntVector w1 = IntVector.fromArray(Simd.INT, w.codes, at + L);
                        IntVector w2 = IntVector.fromArray(Simd.INT, w.codes, at + 2 * L);
                        IntVector w3 = IntVector.fromArray(Simd.INT, w.codes, at + 3 * L);
                        int xi = (r + 1) * perWord;
                        for (int j = 0; j < top; j++) {
                            int field = w.mask << (w.laneBits * j);
                            FloatVector xv = FloatVector.broadcast(F, xs[xi + j]);
                            e0 = ((FloatVector) w0.and(field).convert(VectorOperators.I2F, 0)).fma(xv, e0);
                            e1 = ((FloatVector) w1.and(field).convert(VectorOperators.I2F, 0)).fma(xv, e1);
                            e2 = ((FloatVector) w2.and(field).convert(VectorOperators.I2F, 0)).fma(xv, e2);
                            e3 = ((FloatVector) w3.and(field).convert(VectorOperators.I2F, 0)).fma(xv, e3);
                        }
                        FloatVector xt = FloatVector.broadcast(F, xs[xi + top]);
                        e0 = ((FloatVector) w0.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, e0);
                        e1 = ((FloatVector) w1.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, e1);
                        e2 = ((FloatVector) w2.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, e2);
                        e3 = ((FloatVector) w3.lanewise(VectorOperators.LSHR, topShift)
                                .convert(VectorOperators.I2F, 0)).fma(xt, e3);
                    }
                }
                if (r < rowEnd) {
                    int at = codeBase + (r) * QB + col;
                    IntVector w0 = IntVector.fromArray(Simd.INT, w.codes, at);
                    IntVector w1 = IntVector.fromArray(Simd.INT, w.codes, at + L);
                    IntVector w2 = IntVector.fromArray(Simd.INT, w.codes, at + 2 * L);
                    IntVector w3 = IntVector.fromArray(Simd.INT, w.codes, at + 3 * L);
                    int xi = (r) * perWord;
                    for (int j = 0; j < top; j++) {
                        int field = w.mask << (w.laneBits * j);
                        FloatVector xv = FloatVector.broadcast(F, xs[xi + j]);
                        d0 = ((FloatVector) w0.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d0);
                        d1 = ((FloatVector) w1.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d1);
                        d2 = ((FloatVector) w2.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d2);
                        d3 = ((FloatVector) w3.and(field).convert(VectorOperators.I2F, 0)).fma(xv, d3);
                    }
                    FloatVector xt = FloatVector.broadcast(F, xs[xi + top]);
                    d0 = ((FloatVector) w0.lanewise(VectorOperators.LSHR, topShift)
                            .convert(VectorOperators.I2F, 0)).fma(xt, d0);
                    d1 = ((FloatVector) w1.lanewise(VectorOperators.LSHR, topShift)
                            .convert(VectorOperators.I2F, 0)).fma(xt, d1);
                    d2 = ((FloatVector) w2.lanewise(VectorOperators.LSHR, topShift)
                            .convert(VectorOperators.I2F, 0)).fma(xt, d2);
                    d3 = ((FloatVector) w3.lanewise(VectorOperators.LSHR, topShift)
                            .convert(VectorOperators.I2F, 0)).fma(xt, d3);
                }
                d0 = d0.add(e0);
                d1 = d1.add(e1);
                d2 = d2.add(e2);
                d3 = d3.add(e3);
                int sz = (b * w.groups + g) * QB + col;
                float sum = groupSums[g];
                // acc += scale * (dot - zero * sum x), written out: a helper taking vectors would box them
                // whenever C2 declines to inline it.
                acc0 = d0.sub(FloatVector.fromArray(F, w.zeros, sz).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz), acc0);
                acc1 = d1.sub(FloatVector.fromArray(F, w.zeros, sz + L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + L), acc1);
                acc2 = d2.sub(FloatVector.fromArray(F, w.zeros, sz + 2 * L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + 2 * L), acc2);
                acc3 = d3.sub(FloatVector.fromArray(F, w.zeros, sz + 3 * L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + 3 * L), acc3);
            }
            int o = b * QB + col;
            acc0.intoArray(y, yOff + o, F.indexInRange(o, w.out));
            acc1.intoArray(y, yOff + o + L, F.indexInRange(o + L, w.out));
            acc2.intoArray(y, yOff + o + 2 * L, F.indexInRange(o + 2 * L, w.out));
            acc3.intoArray(y, yOff + o + 3 * L, F.indexInRange(o + 3 * L, w.out));
        }
    }

    /** Any other layout (groups narrower than a word): one code at a time. */
    private static void gemvBlockAnyLayout(BlockedQuantWeight w, int b, float[] xs, float[] groupSums, float[] y,
                                              int yOff) {
        for (int col = 0; col < QB; col += 4 * L) {
            if (b * QB + col >= w.out) {
                break;
            }
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            FloatVector acc2 = FloatVector.zero(F), acc3 = FloatVector.zero(F);
            for (int g = 0; g < w.groups; g++) {
                int i0 = g * w.groupSize;
                FloatVector d0 = FloatVector.zero(F), d1 = FloatVector.zero(F);
                FloatVector d2 = FloatVector.zero(F), d3 = FloatVector.zero(F);
                for (int i = i0; i < i0 + w.groupSize; i++) {
                    FloatVector xv = FloatVector.broadcast(F, xs[i]);
                    d0 = ((FloatVector) w.codes(b, i, col).convert(VectorOperators.I2F, 0)).fma(xv, d0);
                    d1 = ((FloatVector) w.codes(b, i, col + L).convert(VectorOperators.I2F, 0)).fma(xv, d1);
                    d2 = ((FloatVector) w.codes(b, i, col + 2 * L).convert(VectorOperators.I2F, 0)).fma(xv, d2);
                    d3 = ((FloatVector) w.codes(b, i, col + 3 * L).convert(VectorOperators.I2F, 0)).fma(xv, d3);
                }
                int sz = (b * w.groups + g) * QB + col;
                float sum = groupSums[g];
                // acc += scale * (dot - zero * sum x), written out: a helper taking vectors would box them
                // whenever C2 declines to inline it.
                acc0 = d0.sub(FloatVector.fromArray(F, w.zeros, sz).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz), acc0);
                acc1 = d1.sub(FloatVector.fromArray(F, w.zeros, sz + L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + L), acc1);
                acc2 = d2.sub(FloatVector.fromArray(F, w.zeros, sz + 2 * L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + 2 * L), acc2);
                acc3 = d3.sub(FloatVector.fromArray(F, w.zeros, sz + 3 * L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + 3 * L), acc3);
            }
            int o = b * QB + col;
            acc0.intoArray(y, yOff + o, F.indexInRange(o, w.out));
            acc1.intoArray(y, yOff + o + L, F.indexInRange(o + L, w.out));
            acc2.intoArray(y, yOff + o + 2 * L, F.indexInRange(o + 2 * L, w.out));
            acc3.intoArray(y, yOff + o + 3 * L, F.indexInRange(o + 3 * L, w.out));
        }
    }

    @Override
    public void dequantize(PreparedWeight prepared, float[] out) {
        BlockedQuantWeight w = blocked(prepared);
        Checks.matrix("out", out, 0, w.out, w.in, w.in);
        int inBlocks = (w.in + QB - 1) / QB;
        pool.run(w.blocks, b -> {
            float[] tile = TILE.get(); // [QB inputs][QB outputs]
            int rows = Math.min(QB, w.out - b * QB);
            for (int ib = 0; ib < inBlocks; ib++) {
                int cols = Math.min(QB, w.in - ib * QB);
                for (int ii = 0; ii < cols; ii++) {
                    w.dequantizeRow(b, ib * QB + ii, tile, ii * QB, Gemm.NB);
                }
                for (int oo = 0; oo < rows; oo++) {
                    int dst = (b * QB + oo) * w.in + ib * QB;
                    for (int ii = 0; ii < cols; ii++) {
                        out[dst + ii] = tile[ii * QB + oo];
                    }
                }
            }
        });
    }
}
