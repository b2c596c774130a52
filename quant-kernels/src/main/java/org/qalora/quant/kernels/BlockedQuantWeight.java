package org.qalora.quant.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.QuantizedMatrix;

/**
 * The layout {@link VectorQuantKernels} runs on: the GPTQ codes cut into blocks of {@link #QB} output columns,
 * each block stored contiguously ({@code codes [O/QB][I*laneBits/32][QB]}), scales and zeros likewise
 * ({@code [O/QB][G][QB]}). The output dimension is padded to a multiple of QB with zero codes, scales and zeros,
 * so padded columns dequantize to exactly 0 and no kernel needs a tail loop over columns.
 *
 * <p>Why this layout: GPTQ already packs codes along the input dimension with consecutive output columns in
 * consecutive words, so one int vector load yields the codes of L output columns for {@code 32/bits} inputs;
 * dequantization is then shift, mask, convert, subtract the zero, multiply by the scale, all lane-wise along the
 * output dimension. Blocking by QB columns makes each task's slice of W one contiguous stream.
 *
 * <p>3-bit codes are widened to 4-bit lanes here: AutoGPTQ's 3-bit packing puts 32 codes in 3 words with two
 * codes straddling word boundaries, which costs the vector code an extra load, shift and OR per code and, in
 * the GEMV, defeated C2 (3x slower than int4 on the same bytes). The price is memory: a prepared int3 weight
 * takes as much as an int4 one. On-disk and {@link QuantizedMatrix} stay 3-bit.
 *
 * <p>It keeps no reference to the matrix it was made from: a model loaded on the CPU would otherwise hold every
 * projection's codes, scales and zeros twice (0.15 GB per layer of LLaMA-7B at group size 32, 4.8 GB at 32 layers;
 * docs/PERFORMANCE.md). The blocking only moves words and pads columns, so {@link #source()} rebuilds the matrix
 * bit for bit, on demand, for the few readers that need it (the merge, the writers).
 */
final class BlockedQuantWeight implements PreparedWeight {
    /** Output columns per block: a multiple of the micro-kernel width at every vector size. */
    static final int QB = 64;

    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final VectorSpecies<Integer> I = Simd.INT;
    private static final int L = Simd.LANES;

    /** Bits per code of the matrix this was made from (3 where {@link #laneBits} is 4). */
    final int bits;
    /** Bits per code in {@link #codes}: the source width, except 3-bit codes which sit in 4-bit lanes. */
    final int laneBits;
    final int groupSize;
    final int in;
    final int out;
    final int blocks;
    /** Packed rows per block: {@code I * laneBits / 32}. */
    final int packedRows;
    final int groups;
    /** {@code 2^laneBits - 1}. */
    final int mask;
    final int[] codes; // [blocks][packedRows][QB]
    final float[] scales; // [blocks][groups][QB]
    final float[] zeros; // [blocks][groups][QB]

    private BlockedQuantWeight(int out, int in, int bits, int groupSize, int[] codes, float[] scales, float[] zeros) {
        this.bits = bits;
        this.laneBits = laneBits(bits);
        this.groupSize = groupSize;
        this.in = in;
        this.out = out;
        this.blocks = (out + QB - 1) / QB;
        this.packedRows = in / 32 * laneBits;
        this.groups = in / groupSize;
        this.mask = (1 << laneBits) - 1;
        this.codes = codes;
        this.scales = scales;
        this.zeros = zeros;
    }

    private static int laneBits(int bits) {
        return bits == 3 ? 4 : bits;
    }

    static BlockedQuantWeight of(QuantizedMatrix m) {
        int out = m.outFeatures();
        int in = m.inFeatures();
        int blocks = (out + QB - 1) / QB;
        int laneBits = laneBits(m.bits());
        int packedRows = in / 32 * laneBits;
        int[] qweight = m.qweight(); // [in*bits/32, O]
        if (laneBits != m.bits()) {
            qweight = PackedCodes.packRows(PackedCodes.unpackRows(qweight, in, out, m.bits()), in, out, laneBits);
        }
        int[] codes = new int[blocks * packedRows * QB];
        for (int b = 0; b < blocks; b++) {
            int cols = Math.min(QB, out - b * QB);
            for (int r = 0; r < packedRows; r++) {
                System.arraycopy(qweight, r * out + b * QB, codes, (b * packedRows + r) * QB, cols);
            }
        }
        return new BlockedQuantWeight(out, in, m.bits(), m.groupSize(), codes, block(m.scales(), m.groups(), out),
                block(m.zeros(), m.groups(), out));
    }

    /** The same codes and scales with new zero points {@code [groups, O]}. */
    BlockedQuantWeight withZeros(float[] newZeros) {
        if (newZeros.length != (long) groups * out) {
            throw new IllegalArgumentException("zeros has " + newZeros.length + " elements, expected "
                    + (long) groups * out);
        }
        return new BlockedQuantWeight(out, in, bits, groupSize, codes, scales, block(newZeros, groups, out));
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

    /** {@code [blocks][groups][QB]} back to {@code [groups, O]}, dropping the padded columns: the inverse of block. */
    private static float[] unblock(float[] blocked, int groups, int out) {
        float[] perGroup = new float[groups * out];
        int blocks = (out + QB - 1) / QB;
        for (int b = 0; b < blocks; b++) {
            int cols = Math.min(QB, out - b * QB);
            for (int g = 0; g < groups; g++) {
                System.arraycopy(blocked, (b * groups + g) * QB, perGroup, g * out + b * QB, cols);
            }
        }
        return perGroup;
    }

    /** Rebuilt from the blocked arrays (a fresh copy per call; this weight keeps none): the inverse of {@link #of}. */
    @Override
    public QuantizedMatrix source() {
        int[] qweight = new int[packedRows * out]; // [in*laneBits/32, O]
        for (int b = 0; b < blocks; b++) {
            int cols = Math.min(QB, out - b * QB);
            for (int r = 0; r < packedRows; r++) {
                System.arraycopy(codes, (b * packedRows + r) * QB, qweight, r * out + b * QB, cols);
            }
        }
        if (laneBits != bits) { // 3-bit codes were widened to 4-bit lanes; the repacking is exact both ways
            qweight = PackedCodes.packRows(PackedCodes.unpackRows(qweight, in, out, laneBits), in, out, bits);
        }
        return new QuantizedMatrix(out, in, bits, groupSize, qweight, unblock(scales, groups, out),
                unblock(zeros, groups, out));
    }

    @Override
    public int outFeatures() { return out; }

    @Override
    public int inFeatures() { return in; }

    @Override
    public int bits() { return bits; }

    @Override
    public int groupSize() { return groupSize; }

    @Override
    public String toString() {
        return "BlockedQuantWeight[out=" + out + ", in=" + in + ", bits=" + bits + ", group=" + groupSize + "]";
    }

    /** The integer codes of input {@code i} for L columns of block {@code b} starting at column {@code col}. */
    IntVector codes(int b, int i, int col) {
        int perWord = 32 / laneBits;
        IntVector w = IntVector.fromArray(I, codes, b * packedRows * QB + (i / perWord) * QB + col);
        return w.lanewise(VectorOperators.LSHR, laneBits * (i % perWord)).and(mask);
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
        int perWord = 32 / laneBits;
        int row = b * packedRows * QB + (i / perWord) * QB;
        int shift = laneBits * (i % perWord);
        for (int col = 0; col < QB; col += L) {
            // Written out rather than through codes(): a call returning a vector boxes it unless C2 inlines it.
            FloatVector q = (FloatVector) IntVector.fromArray(I, codes, row + col)
                    .lanewise(VectorOperators.LSHR, shift).and(mask).convert(VectorOperators.I2F, 0);
            FloatVector z = FloatVector.fromArray(F, zeros, sz + col);
            FloatVector s = FloatVector.fromArray(F, scales, sz + col);
            q.sub(z).mul(s).intoArray(dst, dstBase + (col / nb) * panelStride + col % nb);
        }
    }
}
