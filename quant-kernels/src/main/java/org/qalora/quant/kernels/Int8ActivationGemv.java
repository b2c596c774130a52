package org.qalora.quant.kernels;

import static org.qalora.quant.kernels.BlockedQuantWeight.QB;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link VectorQuantKernels#gemvInt8Activations}: the one-token GEMV with x rounded to int8
 * ({@link Int8Activations}) and the codes multiplied by it in 16-bit integer lanes, llama.cpp's Q8 x Q4 idea
 * in the Vector API (which has no int8 dot product instruction).
 *
 * <p>Why: the exact kernel spends three vector operations per 16 weights (mask, int-to-float convert, FMA). Here
 * an int vector of code words is read as shorts: each 32-bit word of one output column becomes two 16-bit lanes, the low half
 * holding the column's first {@code 16/bits} inputs of the word and the high half the next ones. One shift and
 * mask extracts a code in all 32 lanes (two inputs of 16 columns), one 16-bit multiply by a broadcast pair
 * {@code (q[i], q[i + 16/bits])} and one add accumulate it: about 3.75 operations per 32 weights. The 16-bit
 * sum of a 32-input block is exact (16 products per lane, each at most 15 * 127: 30,480 < 32,767 at int4,
 * 6,096 at int2); at the block's end the two halves of each word are added as ints, converted to float once and
 * scaled by the block's x scale. The zero-point term uses the sum of the rounded x, so the result is exactly
 * {@code W · x̂} (x̂ the values {@link Int8Activations} stands for) up to float rounding. Measured
 * (docs/PERFORMANCE.md, GEMV section): 2.4x the exact kernel's speed on a weight held in L2, but from DRAM both
 * wait on memory and this one was at best 1.2x faster on the 2-vCPU dev box, so no command uses it by default.
 *
 * <p>2- and 4-bit codes (3-bit in 4-bit lanes) with groups of a multiple of 32 inputs take the integer path.
 * 8-bit codes cannot: one product reaches 255 * 127, two overflow a short; they, and groups narrower than 32,
 * run the exact kernel on x̂, which keeps the same contract.
 */
final class Int8ActivationGemv {
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final VectorSpecies<Integer> I = Simd.INT;
    private static final int L = Simd.LANES;
    private static final int XB = Int8Activations.BLOCK;

    private Int8ActivationGemv() {}

    static boolean usesIntegerPath(BlockedQuantWeight w) {
        return w.laneBits <= 4 && w.groupSize % XB == 0;
    }

    /**
     * x̂ broadcast as pairs: for word row r (inputs {@code r*perWord ..}) and code j of a half word,
     * {@code pairs[r*half + j]} holds {@code q[r*perWord + j]} in its low 16 bits and {@code q[r*perWord + half
     * + j]} in its high 16 bits, the inputs the low and high halves of the row's words hold at position j.
     */
    static int[] pairs(Int8Activations q, int laneBits) {
        int perWord = 32 / laneBits;
        int half = perWord / 2;
        int[] v = q.values;
        int[] pairs = new int[v.length / 2];
        for (int at = 0, p = 0; at < v.length; at += perWord) {       // word row by word row
            for (int j = 0; j < half; j++, p++) {
                pairs[p] = (v[at + j] & 0xFFFF) | (v[at + half + j] << 16);
            }
        }
        return pairs;
    }

    /** {@code [G]}: sum of x̂ over each weight group, for the zero-point term. */
    static float[] groupSums(Int8Activations q, int groupSize) {
        float[] sums = new float[q.length() / groupSize];
        for (int g = 0; g < sums.length; g++) {
            float s = 0;
            for (int k = g * groupSize / XB; k < (g + 1) * groupSize / XB; k++) {
                int blockSum = 0;
                for (int i = k * XB; i < (k + 1) * XB; i++) {
                    blockSum += q.values[i];
                }
                s += q.scales[k] * blockSum;
            }
            sums[g] = s;
        }
        return sums;
    }

    /**
     * y[b*QB .. b*QB+QB) for one block, four vectors of columns at a time (each broadcast pair shared by the
     * four). Per x block: {@code a = sum code * q} in 16-bit lanes, {@code d += xScale * (a_low + a_high)}
     * ({@link #xBlockInt4}, {@link #xBlockAnyWidth}); per weight group: {@code y += scale * (d - zero * sum x̂)}.
     *
     * <p>Why one method per x block, with d passed through a small array: as one method (about 1,400 bytecodes)
     * the kernel was compiled by C1 at tier 2 while C2 was busy, C1's tier-3 compile then ran out of registers, and
     * the method stayed in tier-2 code, where the Vector API boxes every vector: decode ran 10-15x slower in one JVM
     * of three. Small methods compile at every tier. A call per x block (512 weights of work) costs little.
     */
    static void block(BlockedQuantWeight w, int b, int[] pairs, float[] xScales, float[] groupSums, float[] y,
                      int yOff) {
        int perWord = 32 / w.laneBits;
        int blocksPerGroup = w.groupSize / XB;
        float[] d = new float[4 * L]; // [4 column vectors][L]: one group's sum of xScale * code . q
        for (int col = 0; col < QB; col += 4 * L) {
            if (b * QB + col >= w.out) {
                break;
            }
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            FloatVector acc2 = FloatVector.zero(F), acc3 = FloatVector.zero(F);
            for (int g = 0; g < w.groups; g++) {
                Arrays.fill(d, 0f);
                for (int k = g * blocksPerGroup; k < (g + 1) * blocksPerGroup; k++) {
                    int at = b * w.packedRows * QB + k * (XB / perWord) * QB + col;
                    if (w.laneBits == 4) {
                        xBlockInt4(w.codes, at, pairs, k * XB / 2, xScales[k], d);
                    } else {
                        xBlockAnyWidth(w, at, pairs, k * XB / 2, xScales[k], d);
                    }
                }
                int sz = (b * w.groups + g) * QB + col;
                float sum = groupSums[g];
                acc0 = FloatVector.fromArray(F, d, 0).sub(FloatVector.fromArray(F, w.zeros, sz).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz), acc0);
                acc1 = FloatVector.fromArray(F, d, L).sub(FloatVector.fromArray(F, w.zeros, sz + L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + L), acc1);
                acc2 = FloatVector.fromArray(F, d, 2 * L).sub(FloatVector.fromArray(F, w.zeros, sz + 2 * L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + 2 * L), acc2);
                acc3 = FloatVector.fromArray(F, d, 3 * L).sub(FloatVector.fromArray(F, w.zeros, sz + 3 * L).mul(sum))
                        .fma(FloatVector.fromArray(F, w.scales, sz + 3 * L), acc3);
            }
            int o = b * QB + col;
            acc0.intoArray(y, yOff + o, F.indexInRange(o, w.out));
            acc1.intoArray(y, yOff + o + L, F.indexInRange(o + L, w.out));
            acc2.intoArray(y, yOff + o + 2 * L, F.indexInRange(o + 2 * L, w.out));
            acc3.intoArray(y, yOff + o + 3 * L, F.indexInRange(o + 3 * L, w.out));
        }
    }

    /**
     * One x block (32 inputs = 4 word rows) of 4-bit lanes for four vectors of columns starting at code index
     * {@code at}: the four codes of a half word written out with constant shifts (a loop over them compiled to a
     * quarter more scalar work per row). Adds {@code xScale * (a_low + a_high)} to {@code d}.
     */
    private static void xBlockInt4(int[] codes, int at, int[] pairs, int pi, float xScale, float[] d) {
        short mask = 0xF;
        // Written out, no helper taking or returning vectors: C2 boxes them when it declines to inline one
        // (docs/PERFORMANCE.md: 40x slower in one measured run).
        ShortVector a0 = IntVector.zero(I).reinterpretAsShorts(), a1 = a0, a2 = a0, a3 = a0;
        for (int r = 0; r < XB / 8; r++, at += QB, pi += 4) {
            ShortVector w0 = IntVector.fromArray(I, codes, at).reinterpretAsShorts();
            ShortVector w1 = IntVector.fromArray(I, codes, at + L).reinterpretAsShorts();
            ShortVector w2 = IntVector.fromArray(I, codes, at + 2 * L).reinterpretAsShorts();
            ShortVector w3 = IntVector.fromArray(I, codes, at + 3 * L).reinterpretAsShorts();
            ShortVector p = IntVector.broadcast(I, pairs[pi]).reinterpretAsShorts();
            a0 = w0.and(mask).mul(p).add(a0);
            a1 = w1.and(mask).mul(p).add(a1);
            a2 = w2.and(mask).mul(p).add(a2);
            a3 = w3.and(mask).mul(p).add(a3);
            p = IntVector.broadcast(I, pairs[pi + 1]).reinterpretAsShorts();
            a0 = w0.lanewise(VectorOperators.LSHR, 4).and(mask).mul(p).add(a0);
            a1 = w1.lanewise(VectorOperators.LSHR, 4).and(mask).mul(p).add(a1);
            a2 = w2.lanewise(VectorOperators.LSHR, 4).and(mask).mul(p).add(a2);
            a3 = w3.lanewise(VectorOperators.LSHR, 4).and(mask).mul(p).add(a3);
            p = IntVector.broadcast(I, pairs[pi + 2]).reinterpretAsShorts();
            a0 = w0.lanewise(VectorOperators.LSHR, 8).and(mask).mul(p).add(a0);
            a1 = w1.lanewise(VectorOperators.LSHR, 8).and(mask).mul(p).add(a1);
            a2 = w2.lanewise(VectorOperators.LSHR, 8).and(mask).mul(p).add(a2);
            a3 = w3.lanewise(VectorOperators.LSHR, 8).and(mask).mul(p).add(a3);
            p = IntVector.broadcast(I, pairs[pi + 3]).reinterpretAsShorts();
            a0 = w0.lanewise(VectorOperators.LSHR, 12).mul(p).add(a0);
            a1 = w1.lanewise(VectorOperators.LSHR, 12).mul(p).add(a1);
            a2 = w2.lanewise(VectorOperators.LSHR, 12).mul(p).add(a2);
            a3 = w3.lanewise(VectorOperators.LSHR, 12).mul(p).add(a3);
        }
        // Each int lane holds two signed 16-bit sums (low: the word's first inputs, high: the rest): sign-extend
        // the low one, shift the high one down arithmetically, add; then d += xScale * sum.
        FloatVector sx = FloatVector.broadcast(F, xScale);
        IntVector s0 = a0.reinterpretAsInts(), s1 = a1.reinterpretAsInts();
        IntVector s2 = a2.reinterpretAsInts(), s3 = a3.reinterpretAsInts();
        ((FloatVector) s0.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s0.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, 0)).intoArray(d, 0);
        ((FloatVector) s1.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s1.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, L)).intoArray(d, L);
        ((FloatVector) s2.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s2.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, 2 * L)).intoArray(d, 2 * L);
        ((FloatVector) s3.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s3.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, 3 * L)).intoArray(d, 3 * L);
    }

    /** {@link #xBlockInt4} for other lane widths (2-bit: eight codes per half word, 2 rows per x block). */
    private static void xBlockAnyWidth(BlockedQuantWeight w, int at, int[] pairs, int pi, float xScale, float[] d) {
        int lb = w.laneBits;
        int half = 16 / lb;
        short mask = (short) w.mask;
        int topShift = lb * (half - 1);
        ShortVector a0 = IntVector.zero(I).reinterpretAsShorts(), a1 = a0, a2 = a0, a3 = a0;
        for (int r = 0; r < XB * lb / 32; r++, at += QB, pi += half) {
            ShortVector w0 = IntVector.fromArray(I, w.codes, at).reinterpretAsShorts();
            ShortVector w1 = IntVector.fromArray(I, w.codes, at + L).reinterpretAsShorts();
            ShortVector w2 = IntVector.fromArray(I, w.codes, at + 2 * L).reinterpretAsShorts();
            ShortVector w3 = IntVector.fromArray(I, w.codes, at + 3 * L).reinterpretAsShorts();
            ShortVector p = IntVector.broadcast(I, pairs[pi]).reinterpretAsShorts();
            a0 = w0.and(mask).mul(p).add(a0);
            a1 = w1.and(mask).mul(p).add(a1);
            a2 = w2.and(mask).mul(p).add(a2);
            a3 = w3.and(mask).mul(p).add(a3);
            for (int j = 1; j < half - 1; j++) {
                int shift = lb * j;
                p = IntVector.broadcast(I, pairs[pi + j]).reinterpretAsShorts();
                a0 = w0.lanewise(VectorOperators.LSHR, shift).and(mask).mul(p).add(a0);
                a1 = w1.lanewise(VectorOperators.LSHR, shift).and(mask).mul(p).add(a1);
                a2 = w2.lanewise(VectorOperators.LSHR, shift).and(mask).mul(p).add(a2);
                a3 = w3.lanewise(VectorOperators.LSHR, shift).and(mask).mul(p).add(a3);
            }
            p = IntVector.broadcast(I, pairs[pi + half - 1]).reinterpretAsShorts();
            a0 = w0.lanewise(VectorOperators.LSHR, topShift).mul(p).add(a0);
            a1 = w1.lanewise(VectorOperators.LSHR, topShift).mul(p).add(a1);
            a2 = w2.lanewise(VectorOperators.LSHR, topShift).mul(p).add(a2);
            a3 = w3.lanewise(VectorOperators.LSHR, topShift).mul(p).add(a3);
        }
        // Each int lane holds two signed 16-bit sums (low: the word's first inputs, high: the rest): sign-extend
        // the low one, shift the high one down arithmetically, add; then d += xScale * sum.
        FloatVector sx = FloatVector.broadcast(F, xScale);
        IntVector s0 = a0.reinterpretAsInts(), s1 = a1.reinterpretAsInts();
        IntVector s2 = a2.reinterpretAsInts(), s3 = a3.reinterpretAsInts();
        ((FloatVector) s0.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s0.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, 0)).intoArray(d, 0);
        ((FloatVector) s1.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s1.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, L)).intoArray(d, L);
        ((FloatVector) s2.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s2.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, 2 * L)).intoArray(d, 2 * L);
        ((FloatVector) s3.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                .add(s3.lanewise(VectorOperators.ASHR, 16)).convert(VectorOperators.I2F, 0))
                .fma(sx, FloatVector.fromArray(F, d, 3 * L)).intoArray(d, 3 * L);
    }
}
