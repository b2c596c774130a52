package org.qalora.quant.kernels;

import static org.qalora.quant.kernels.BlockedQuantWeight.QB;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * An experiment, kept in test sources with its measurement (docs/PERFORMANCE.md, GEMV section): the int4 GEMV
 * with each code turned into a float by a table lookup ({@code selectFrom}: one permute of a 16-entry table
 * holding the float bits of 0..15, indexed by the word shifted so the code sits in the low nibble; the permute
 * reads only the low 4 bits) instead of {@code and} + {@code convert}. Same two operations per 16 codes; the
 * question was whether the permute is cheaper than the convert here. int4, whole words per group only.
 */
public final class GemvLookupExperiment {
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final int L = Simd.LANES;
    private static final IntVector TABLE; // float bits of 0, 1, ..., 15 (wraps for narrower vectors: unused)

    static {
        int[] bits = new int[L];
        for (int i = 0; i < L; i++) {
            bits[i] = Float.floatToRawIntBits(i % 16);
        }
        TABLE = IntVector.fromArray(Simd.INT, bits, 0);
    }

    private GemvLookupExperiment() {}

    public static boolean applicable(PreparedWeight p) {
        return p instanceof BlockedQuantWeight w && w.laneBits == 4 && L == 16 && w.groupSize % 8 == 0;
    }

    public static void gemv(KernelPool pool, PreparedWeight prepared, float[] x, float[] y) {
        BlockedQuantWeight w = (BlockedQuantWeight) prepared;
        float[] groupSums = new float[w.groups];
        for (int g = 0; g < w.groups; g++) {
            float s = 0;
            for (int i = g * w.groupSize; i < (g + 1) * w.groupSize; i++) {
                s += x[i];
            }
            groupSums[g] = s;
        }
        pool.run(w.blocks, b -> block(w, b, x, groupSums, y));
    }

    private static void block(BlockedQuantWeight w, int b, float[] xs, float[] groupSums, float[] y) {
        int codeBase = b * w.packedRows * QB;
        for (int col = 0; col < QB; col += 4 * L) {
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            FloatVector acc2 = FloatVector.zero(F), acc3 = FloatVector.zero(F);
            for (int g = 0; g < w.groups; g++) {
                FloatVector d0 = FloatVector.zero(F), d1 = FloatVector.zero(F);
                FloatVector d2 = FloatVector.zero(F), d3 = FloatVector.zero(F);
                int rowEnd = (g * w.groupSize + w.groupSize) / 8;
                for (int r = g * w.groupSize / 8; r < rowEnd; r++) {
                    int at = codeBase + r * QB + col;
                    IntVector w0 = IntVector.fromArray(Simd.INT, w.codes, at);
                    IntVector w1 = IntVector.fromArray(Simd.INT, w.codes, at + L);
                    IntVector w2 = IntVector.fromArray(Simd.INT, w.codes, at + 2 * L);
                    IntVector w3 = IntVector.fromArray(Simd.INT, w.codes, at + 3 * L);
                    for (int j = 0; j < 8; j++) {
                        int shift = 4 * j;
                        FloatVector xv = FloatVector.broadcast(F, xs[r * 8 + j]);
                        d0 = w0.lanewise(VectorOperators.LSHR, shift).selectFrom(TABLE).reinterpretAsFloats().fma(xv, d0);
                        d1 = w1.lanewise(VectorOperators.LSHR, shift).selectFrom(TABLE).reinterpretAsFloats().fma(xv, d1);
                        d2 = w2.lanewise(VectorOperators.LSHR, shift).selectFrom(TABLE).reinterpretAsFloats().fma(xv, d2);
                        d3 = w3.lanewise(VectorOperators.LSHR, shift).selectFrom(TABLE).reinterpretAsFloats().fma(xv, d3);
                    }
                }
                int sz = (b * w.groups + g) * QB + col;
                float sum = groupSums[g];
                acc0 = d0.sub(FloatVector.fromArray(F, w.zeros, sz).mul(sum)).fma(FloatVector.fromArray(F, w.scales, sz), acc0);
                acc1 = d1.sub(FloatVector.fromArray(F, w.zeros, sz + L).mul(sum)).fma(FloatVector.fromArray(F, w.scales, sz + L), acc1);
                acc2 = d2.sub(FloatVector.fromArray(F, w.zeros, sz + 2 * L).mul(sum)).fma(FloatVector.fromArray(F, w.scales, sz + 2 * L), acc2);
                acc3 = d3.sub(FloatVector.fromArray(F, w.zeros, sz + 3 * L).mul(sum)).fma(FloatVector.fromArray(F, w.scales, sz + 3 * L), acc3);
            }
            int o = b * QB + col;
            acc0.intoArray(y, o, F.indexInRange(o, w.out));
            acc1.intoArray(y, o + L, F.indexInRange(o + L, w.out));
            acc2.intoArray(y, o + 2 * L, F.indexInRange(o + 2 * L, w.out));
            acc3.intoArray(y, o + 3 * L, F.indexInRange(o + 3 * L, w.out));
        }
    }
}
