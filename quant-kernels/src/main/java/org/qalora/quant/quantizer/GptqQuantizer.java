package org.qalora.quant.quantizer;

import java.util.Comparator;
import java.util.stream.IntStream;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.DenseKernels;

/**
 * GPTQ (Frantar et al.; IST-DASLab {@code gptq.py} {@code fasterquant}): quantizes columns left to right and
 * spreads each column's rounding error over the not-yet-quantized columns through the upper Cholesky factor of
 * the inverse Hessian, so the layer output {@code W X} rather than {@code W} itself is preserved.
 *
 * <p>Steps, as the reference: dead inputs (zero Hessian diagonal) get weight 0 and diagonal 1; damping
 * {@code dampPercent * mean(diag H)} on the diagonal; {@code U = chol(H^-1)} upper; columns processed in blocks of
 * 128 with the error applied inside the block immediately and to the columns right of the block lazily in one
 * matrix product. Group parameters are computed at each group start from the <em>global</em> weight matrix, which
 * holds earlier blocks' error feedback but not the current block's (the reference's quirk, kept so results match
 * it when groups are smaller than a block). With {@code staticGroups} all group parameters come from the original
 * weights up front; only then is act-order ({@code descAct}, columns in descending Hessian diagonal order)
 * allowed, because it keeps groups contiguous ({@code g_idx[i] = i / groupSize}) as QA-LoRA needs.
 *
 * <p>One deliberate difference: quantization uses the fp16-rounded scale (see {@link MinMaxParams}), so the
 * error fed back is the error of the weights actually stored. The Hessian inverse and Cholesky factors are
 * computed in double for stability; weights and updates are float32 as in the reference.
 *
 * <p>The two expensive stages are strategies: the inverse-Hessian factor ({@link InverseFactorSolver}, in
 * {@link #prepare}) and the column-by-column quantization ({@link GptqColumns}, in {@link #quantize}: the CPU's
 * {@link CpuGptqColumns} or the GPU's bit-identical {@code CudaGptqColumns}); {@link GptqDevice} places both. Dead
 * inputs, act-order permutations and static group parameters stay here, on the host ({@code O(out * in)}).
 */
public final class GptqQuantizer {
    /** Columns per lazy-update block, as the reference. */
    public static final int BLOCK_SIZE = 128;

    private final int bits;
    private final int groupSize;
    private final boolean sym;
    private final boolean descAct;
    private final boolean staticGroups;
    private final double dampPercent;
    private final GptqColumns columns;
    private final InverseFactorSolver solver;

    /** On the Vector API kernels, the inverse-Hessian factor on the CPU. */
    public GptqQuantizer(int bits, int groupSize, boolean sym, boolean descAct, boolean staticGroups, double dampPercent) {
        this(bits, groupSize, sym, descAct, staticGroups, dampPercent, CpuGptqColumns.DEFAULT, InverseFactorSolver.CPU);
    }

    /** @param kernels runs the lazy block updates of the CPU column stage (the O(out * in^2) part) */
    public GptqQuantizer(int bits, int groupSize, boolean sym, boolean descAct, boolean staticGroups, double dampPercent,
                         DenseKernels kernels) {
        this(bits, groupSize, sym, descAct, staticGroups, dampPercent, new CpuGptqColumns(kernels),
                InverseFactorSolver.CPU);
    }

    /**
     * @param columns runs the column stage (the O(out * in^2) part): {@link CpuGptqColumns} or a GPU one
     *                ({@link GptqSolve#columns}); the two give the same bits
     * @param solver  computes the inverse-Hessian factor (the O(in^3) part): {@link InverseFactorSolver#CPU} or a GPU
     *                one ({@link GptqSolve#solver}); the two agree within 1e-9 but not bit for bit
     */
    public GptqQuantizer(int bits, int groupSize, boolean sym, boolean descAct, boolean staticGroups, double dampPercent,
                         GptqColumns columns, InverseFactorSolver solver) {
        PackedCodes.checkBits(bits);
        if (groupSize != -1 && groupSize <= 0) {
            throw new IllegalArgumentException("group size " + groupSize + " must be positive (or -1 for whole rows)");
        }
        if (descAct && !staticGroups) {
            throw new IllegalArgumentException("act-order (desc_act) without static groups scatters groups over the input"
                    + " dimension, which QA-LoRA cannot pool: enable static_groups or disable desc_act");
        }
        if (!(dampPercent > 0 && dampPercent < 1)) {
            throw new IllegalArgumentException("damp_percent " + dampPercent + " must be in (0, 1)");
        }
        this.bits = bits;
        this.groupSize = groupSize;
        this.sym = sym;
        this.descAct = descAct;
        this.staticGroups = staticGroups;
        this.dampPercent = dampPercent;
        this.columns = java.util.Objects.requireNonNull(columns, "columns");
        this.solver = java.util.Objects.requireNonNull(solver, "solver");
    }

    /** The same settings with the inverse-Hessian factor computed by {@code newSolver}. */
    public GptqQuantizer withSolver(InverseFactorSolver newSolver) {
        return new GptqQuantizer(bits, groupSize, sym, descAct, staticGroups, dampPercent, columns, newSolver);
    }

    /** The same settings with the column stage run by {@code newColumns}. */
    public GptqQuantizer withColumns(GptqColumns newColumns) {
        return new GptqQuantizer(bits, groupSize, sym, descAct, staticGroups, dampPercent, newColumns, solver);
    }

    /** The same settings with the solve and the column stage where {@code device} says. */
    public GptqQuantizer on(GptqDevice device) {
        return new GptqQuantizer(bits, groupSize, sym, descAct, staticGroups, dampPercent, device.columns(),
                device.solver());
    }

    /**
     * What GPTQ derives from a Hessian alone, shareable by every projection fed the same input (q/k/v, gate/up):
     * the dead inputs, the processing order and the upper Cholesky factor of the damped inverse.
     *
     * @param dead inputs never active in calibration, {@code [I]}
     * @param perm processing order (identity, or act-order), {@code [I]}
     * @param u    upper Cholesky factor of {@code H^-1} in processing order, {@code [I, I]}
     */
    public record InverseHessian(int columns, boolean[] dead, int[] perm, float[] u) {}

    /** Damps, reorders and factorises a Hessian once (the {@code O(I^3)} part). */
    public InverseHessian prepare(Hessian hessian, String name) {
        int in = hessian.columns();
        double[] h = hessian.matrix();       // [I, I]
        boolean[] dead = new boolean[in];
        for (int i = 0; i < in; i++) {
            if (h[i * in + i] == 0) {        // an input never active in calibration: its weights cannot matter
                h[i * in + i] = 1;
                dead[i] = true;
            }
        }
        // Column order: identity, or descending diag(H) for act-order (stable sort keeps ties in input order).
        int[] perm = IntStream.range(0, in).toArray();
        if (descAct) {
            final double[] hh = h;
            perm = IntStream.range(0, in).boxed()
                    .sorted(Comparator.comparingDouble((Integer i) -> -hh[i * in + i]))
                    .mapToInt(Integer::intValue).toArray();
            h = permuteSymmetric(h, in, perm);
        }
        double damp = 0;
        for (int i = 0; i < in; i++) {
            damp += h[i * in + i];
        }
        damp = dampPercent * damp / in;
        for (int i = 0; i < in; i++) {
            h[i * in + i] += damp;
        }
        // The O(I^3) part: on the CPU blocked and parallel, bit-identical to CholeskyMath (the reference it is tested
        // against; minutes per 11008-wide Hessian in plain Java); or cuSOLVER on a GPU (CudaGptqSolve).
        return new InverseHessian(in, dead, perm, toFloat(solver.upperCholeskyOfInverse(h, in, name)));
    }

    /** Quantizes a dense weight given the Hessian of its inputs (prepares it first). */
    public QuantizedMatrix quantize(float[] weight, int out, int in, Hessian hessian, String name) {
        if (hessian.columns() != in) {
            throw new IllegalArgumentException(name + ": Hessian is " + hessian.columns() + " x " + hessian.columns()
                    + " but the weight has " + in + " inputs");
        }
        return quantize(weight, out, in, prepare(hessian, name), name);
    }

    /**
     * Quantizes a dense weight given its prepared inverse Hessian.
     *
     * @param weight {@code [out, in]} row-major (HF Linear layout); not modified
     * @param name   the tensor, for error messages
     */
    public QuantizedMatrix quantize(float[] weight, int out, int in, InverseHessian prepared, String name) {
        int g = groupSize == -1 ? in : groupSize;
        RtnQuantizer.checkShape(weight, out, in, g, name);
        if (prepared.columns() != in) {
            throw new IllegalArgumentException(name + ": Hessian is " + prepared.columns() + " x " + prepared.columns()
                    + " but the weight has " + in + " inputs");
        }
        int maxq = (1 << bits) - 1;
        int groups = in / g;
        float[] w = weight.clone();          // [O, I], the reference's global W
        for (int i = 0; i < in; i++) {
            if (prepared.dead()[i]) {
                for (int o = 0; o < out; o++) {
                    w[o * in + i] = 0;
                }
            }
        }
        float[] scales = new float[groups * out]; // [G, O]
        float[] zeros = new float[groups * out];  // [G, O]
        if (staticGroups) {
            for (int k = 0; k < groups; k++) {
                MinMaxParams.ofColumns(w, out, in, k * g, g, maxq, sym, scales, zeros, k);
            }
        }
        int[] perm = prepared.perm();
        if (descAct) {
            w = permuteColumns(w, out, in, perm);
        }
        int[] groupOf = new int[in];         // the group of each processing column
        for (int col = 0; col < in; col++) {
            groupOf[col] = (staticGroups ? perm[col] : col) / g;
        }
        int[] codes = columns.quantize(new GptqColumns.Problem(out, in, g, maxq, sym, staticGroups, groupOf, w,
                prepared.u(), scales, zeros), name);     // [O, I] in processing order

        if (descAct) {
            int[] unpermuted = new int[codes.length];
            for (int o = 0; o < out; o++) {
                for (int c = 0; c < in; c++) {
                    unpermuted[o * in + perm[c]] = codes[o * in + c];
                }
            }
            codes = unpermuted;
        }
        return QuantizedMatrix.fromCodes(out, in, bits, g, codes, scales, zeros);
    }

    private static float[] permuteColumns(float[] w, int out, int in, int[] perm) {
        float[] p = new float[w.length];
        for (int o = 0; o < out; o++) {
            for (int c = 0; c < in; c++) {
                p[o * in + c] = w[o * in + perm[c]];
            }
        }
        return p;
    }

    private static double[] permuteSymmetric(double[] h, int n, int[] perm) {
        double[] p = new double[h.length];
        for (int a = 0; a < n; a++) {
            for (int b = 0; b < n; b++) {
                p[a * n + b] = h[perm[a] * n + perm[b]];
            }
        }
        return p;
    }

    private static float[] toFloat(double[] values) {
        float[] f = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            f[i] = (float) values[i];
        }
        return f;
    }

    @Override
    public String toString() {
        return "GptqQuantizer[bits=" + bits + ", group=" + groupSize + ", sym=" + sym + ", descAct=" + descAct
                + ", staticGroups=" + staticGroups + ", damp=" + dampPercent + ", solver=" + solver + ", columns=" + columns + "]";
    }
}
