package org.qalora.quant.quantizer;

/**
 * GPTQ's column stage, the part of {@link GptqQuantizer#quantize(float[], int, int, GptqQuantizer.InverseHessian,
 * String)} after the inverse-Hessian factor: columns quantized left to right in blocks of
 * {@link GptqQuantizer#BLOCK_SIZE}, each column's error fed to the rest of its block at once and to the columns right
 * of the block lazily, in one product per block. {@code O(out * in^2)}: three quarters of a LLaMA-7B layer's GPTQ
 * once the solve is on the GPU.
 *
 * <p>Two implementations, which give the same bits (codes, scales and zeros) for the same problem:
 * {@link CpuGptqColumns} (the reference, on the {@code DenseKernels} the quantizer was built with) and
 * {@code org.qalora.quant.cuda.CudaGptqColumns} (the GPU; bit-identical to the CPU stage on
 * {@code VectorDenseKernels}, the default). {@link GptqSolve#columns} chooses between them.
 */
@FunctionalInterface
public interface GptqColumns {
    /**
     * One weight's column stage.
     *
     * @param out          rows of W
     * @param in           columns of W (processing order)
     * @param groupSize    columns per group ({@code in} for whole rows); divides {@code in}
     * @param maxq         the largest code, {@code 2^bits - 1}
     * @param sym          symmetric group parameters (used only when they are computed here)
     * @param staticGroups true: {@code scales} and {@code zeros} hold every group's parameters already; false: they
     *                     are computed here at each column {@code col % groupSize == 0}, from the global W (which
     *                     holds earlier blocks' lazy updates but not the current block's in-block updates: the
     *                     reference's quirk)
     * @param groupOf      the group of each processing column, {@code [in]}: {@code col / groupSize}, or under
     *                     act-order with static groups {@code perm[col] / groupSize}
     * @param w            W {@code [out, in]} row-major in processing order, dead inputs zeroed; an implementation
     *                     may overwrite it ({@link CpuGptqColumns} applies the lazy updates in place and so leaves
     *                     the global W after the last block's: every column's error shows in it bit for bit)
     * @param u            the upper Cholesky factor of {@code H^-1} in processing order, {@code [in, in]}; read only
     * @param scales       {@code [in / groupSize, out]}: read when static, written otherwise
     * @param zeros        {@code [in / groupSize, out]}: likewise
     */
    record Problem(int out, int in, int groupSize, int maxq, boolean sym, boolean staticGroups, int[] groupOf,
                   float[] w, float[] u, float[] scales, float[] zeros) {
        public Problem {
            if (out < 1 || in < 1 || groupSize < 1 || in % groupSize != 0) {
                throw new IllegalArgumentException("GPTQ columns of [" + out + ", " + in + "] in groups of " + groupSize
                        + ": need positive sizes and a group size that divides the columns");
            }
            int groups = in / groupSize;
            if (w.length != (long) out * in || u.length != (long) in * in || groupOf.length != in
                    || scales.length != (long) groups * out || zeros.length != (long) groups * out) {
                throw new IllegalArgumentException("GPTQ columns of [" + out + ", " + in + "]: arrays of " + w.length
                        + " (W), " + u.length + " (U), " + groupOf.length + " (groups), " + scales.length + " and "
                        + zeros.length + " (scales, zeros) entries do not fit");
            }
        }

        /** Groups per row. */
        public int groups() {
            return in / groupSize;
        }
    }

    /**
     * Quantizes every column of {@code p}.
     *
     * @param name the tensor, for error messages
     * @return the codes, {@code [out, in]} row-major in processing order; {@code p.scales()} and {@code p.zeros()}
     *         are filled when the groups are not static
     */
    int[] quantize(Problem p, String name);
}
