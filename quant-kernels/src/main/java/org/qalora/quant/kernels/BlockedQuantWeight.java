package org.qalora.quant.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.qalora.quant.QuantizedMatrix;

/**
 * The layout {@link VectorQuantKernels} runs on: the GPTQ codes cut into blocks of {@link #QB} output columns,
 * each block stored contiguously ({@code codes [O/QB][I*bits/32][QB]}), scales and zeros likewise
 * ({@code [O/QB][G][QB]}). The output dimension is padded to a multiple of QB with zero codes, scales and zeros,
 * so padded columns dequantize to exactly 0 and no kernel needs a tail loop over columns.
 *
 * <p>Why this layout: GPTQ already packs codes along the input dimension with consecutive output columns in
 * consecutive words, so one int vector load yields the codes of L output columns for {@code 32/bits} inputs;
 * dequantization is then shift, mask, convert, subtract the zero, multiply by the scale, all lane-wise along the
 * output dimension. Blocking by QB columns makes each task's slice of W one contiguous stream.
 */
final class BlockedQuantWeight implements PreparedWeight {
    /** Output columns per block: a multiple of the micro-kernel width at every vector size. */
    static final int QB = 64;

    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final VectorSpecies<Integer> I = Simd.INT;
    private static final int L = Simd.LANES;

    private final QuantizedMatrix source;
    final int bits;
    final int groupSize;
    final int in;
    final int out;
    final int blocks;
    /** Packed rows per block: {@code I * bits / 32}. */
    final int packedRows;
    final int groups;
    final int mask;
    final int[] codes; // [blocks][packedRows][QB]
    final float[] scales; // [blocks][groups][QB]
    final float[] zeros; // [blocks][groups][QB]
    /**
     * 3-bit only (null otherwise): where input i's code sits. Code = ((word[rowA] >>> shiftA) | (word[rowB] <<
     * shiftB)) & 7: two of every 32 codes straddle two words in the AutoGPTQ layout; for the others rowB = rowA
     * and shiftB = 3, which contributes nothing under the mask.
     */
    final int[] rowA;
    final int[] shiftA;
    final int[] rowB;
    final int[] shiftB;

    private BlockedQuantWeight(QuantizedMatrix source, int[] codes, float[] scales, float[] zeros,
                               int[][] threeBitTables) {
        this.source = source;
        this.bits = source.bits();
        this.groupSize = source.groupSize();
        this.in = source.inFeatures();
        this.out = source.outFeatures();
        this.blocks = (out + QB - 1) / QB;
        this.packedRows = in / 32 * bits;
        this.groups = source.groups();
        this.mask = source.maxCode();
        this.codes = codes;
        this.scales = scales;
        this.zeros = zeros;
        this.rowA = threeBitTables == null ? null : threeBitTables[0];
        this.shiftA = threeBitTables == null ? null : threeBitTables[1];
        this.rowB = threeBitTables == null ? null : threeBitTables[2];
        this.shiftB = threeBitTables == null ? null : threeBitTables[3];
    }

    static BlockedQuantWeight of(QuantizedMatrix m) {
        int out = m.outFeatures();
        int blocks = (out + QB - 1) / QB;
        int packedRows = m.inFeatures() / 32 * m.bits();
        int[] qweight = m.qweight(); // [packedRows, O]
        int[] codes = new int[blocks * packedRows * QB];
        for (int b = 0; b < blocks; b++) {
            int cols = Math.min(QB, out - b * QB);
            for (int r = 0; r < packedRows; r++) {
                System.arraycopy(qweight, r * out + b * QB, codes, (b * packedRows + r) * QB, cols);
            }
        }
        return new BlockedQuantWeight(m, codes, block(m.scales(), m.groups(), out),
                block(m.zeros(), m.groups(), out), m.bits() == 3 ? threeBitTables(m.inFeatures()) : null);
    }

    /** The same codes and scales with new zero points {@code [groups, O]}. */
    BlockedQuantWeight withZeros(float[] newZeros) {
        QuantizedMatrix merged = source.withZeros(newZeros); // validates the length
        int[][] tables = rowA == null ? null : new int[][] {rowA, shiftA, rowB, shiftB};
        return new BlockedQuantWeight(merged, codes, scales, block(newZeros, groups, out), tables);
    }

    /** {@code [groups, O]} to {@code [blocks][groups][QB]}, zero past O. */
    private static float[] block(float[] perGroup, int groups, int out) {
        int blocks = (out + QB - 1) / QB;
        float[] blocked = new float[blocks * groups * QB];
        for (int b = 0; b < blocks; b++) {
            int cols = Math.min(QB, out - b * QB);
            for (int g = 0; g < groups; g++) {
                System.arraycopy(perGroup, g * out + b * QB, blocked, (b * groups + g) * QB, cols);
            }
        }
        return blocked;
    }

    private static int[][] threeBitTables(int in) {
        int[] rowA = new int[in];
        int[] shiftA = new int[in];
        int[] rowB = new int[in];
        int[] shiftB = new int[in];
        for (int i = 0; i < in; i++) {
            int base = (i >>> 5) * 3;
            int j = i & 31;
            if (j < 10) {
                set(i, rowA, shiftA, rowB, shiftB, base, 3 * j, base, 3);
            } else if (j == 10) {
                set(i, rowA, shiftA, rowB, shiftB, base, 30, base + 1, 2);
            } else if (j < 21) {
                set(i, rowA, shiftA, rowB, shiftB, base + 1, 3 * (j - 11) + 1, base + 1, 3);
            } else if (j == 21) {
                set(i, rowA, shiftA, rowB, shiftB, base + 1, 31, base + 2, 1);
            } else {
                set(i, rowA, shiftA, rowB, shiftB, base + 2, 3 * (j - 22) + 2, base + 2, 3);
            }
        }
        return new int[][] {rowA, shiftA, rowB, shiftB};
    }

    private static void set(int i, int[] rowA, int[] shiftA, int[] rowB, int[] shiftB, int ra, int sa, int rb,
                            int sb) {
        rowA[i] = ra;
        shiftA[i] = sa;
        rowB[i] = rb;
        shiftB[i] = sb;
    }

    @Override
    public QuantizedMatrix source() {
        return source;
    }

    /** The integer codes of input {@code i} for L columns of block {@code b} starting at column {@code col}. */
    IntVector codes(int b, int i, int col) {
        int base = b * packedRows * QB + col;
        if (bits == 3) {
            IntVector wa = IntVector.fromArray(I, codes, base + rowA[i] * QB);
            IntVector wb = IntVector.fromArray(I, codes, base + rowB[i] * QB);
            return wa.lanewise(VectorOperators.LSHR, shiftA[i])
                    .or(wb.lanewise(VectorOperators.LSHL, shiftB[i])).and(7);
        }
        int perWord = 32 / bits;
        IntVector w = IntVector.fromArray(I, codes, base + (i / perWord) * QB);
        return w.lanewise(VectorOperators.LSHR, bits * (i % perWord)).and(mask);
    }

    /**
     * Dequantizes input {@code i} of block {@code b}, all QB columns, exactly as {@link QuantizedMatrix#weight}
     * does ({@code scale * (code - zero)} in float). Column {@code c} goes to
     * {@code dst[dstBase + (c / NB) * panelStride + c % NB]}: the micro-panel layout of {@link Gemm} when
     * panelStride is {@code kc * NB}, a plain row when it is NB.
     */
    void dequantizeRow(int b, int i, float[] dst, int dstBase, int panelStride) {
        int sz = (b * groups + i / groupSize) * QB;
        int nb = Gemm.NB;
        for (int col = 0; col < QB; col += L) {
            FloatVector q = (FloatVector) codes(b, i, col).convert(VectorOperators.I2F, 0);
            FloatVector z = FloatVector.fromArray(F, zeros, sz + col);
            FloatVector s = FloatVector.fromArray(F, scales, sz + col);
            q.sub(z).mul(s).intoArray(dst, dstBase + (col / nb) * panelStride + col % nb);
        }
    }
}
