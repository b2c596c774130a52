package org.qalora.quant.quantizer;

import java.util.Objects;
import org.qalora.quant.kernels.DenseKernels;
import org.qalora.quant.kernels.VectorDenseKernels;

/**
 * GPTQ's column stage on the CPU, as the reference ({@code fasterquant}) runs it: per block of
 * {@link GptqQuantizer#BLOCK_SIZE} columns, a copy {@code W1} of the block; per column its code, its error
 * {@code e = (x - deq) / U[col, col]} and the update of the block's later columns {@code W1[:, j] -= e U[col, j]};
 * then the columns right of the block, {@code W[:, i2:] += (-Err1) U[i1:i2, i2:]}, as one matrix product on
 * {@code kernels}. Every row is independent of the others (the GPU stage relies on it).
 *
 * <p>This is the reference for {@code CudaGptqColumns}, which reproduces its bits with {@link VectorDenseKernels}
 * (how {@code Gemm} sums each element of the product); with other kernels the product rounds differently.
 */
public final class CpuGptqColumns implements GptqColumns {
    /** On the Vector API kernels: the default, and the one the GPU stage matches bit for bit. */
    public static final CpuGptqColumns DEFAULT = new CpuGptqColumns(new VectorDenseKernels());

    private final DenseKernels kernels;

    /** @param kernels runs the lazy block updates (the {@code O(out * in^2)} part) */
    public CpuGptqColumns(DenseKernels kernels) {
        this.kernels = Objects.requireNonNull(kernels, "kernels");
    }

    @Override
    public int[] quantize(Problem p, String name) {
        int out = p.out();
        int in = p.in();
        int g = p.groupSize();
        float[] w = p.w();                   // [O, I], the reference's global W
        float[] u = p.u();                   // [I, I], upper
        float[] scales = p.scales();         // [G, O]
        float[] zeros = p.zeros();
        int[] codes = new int[out * in];     // [O, I] in processing order
        int bs = GptqQuantizer.BLOCK_SIZE;
        float[] block = new float[out * bs]; // W1 [O, count]
        float[] err = new float[out * bs];   // Err1 [O, count]
        for (int i1 = 0; i1 < in; i1 += bs) {
            int i2 = Math.min(i1 + bs, in);
            int count = i2 - i1;
            for (int o = 0; o < out; o++) {
                System.arraycopy(w, o * in + i1, block, o * count, count);
            }
            for (int i = 0; i < count; i++) {
                int col = i1 + i;
                int k = p.groupOf()[col];
                if (!p.staticGroups() && col % g == 0) {
                    // from the global W (reference quirk)
                    MinMaxParams.ofColumns(w, out, in, col, g, p.maxq(), p.sym(), scales, zeros, k);
                }
                float d = u[col * in + col];
                for (int o = 0; o < out; o++) {
                    float s = scales[k * out + o];
                    float z = zeros[k * out + o];
                    float x = block[o * count + i];
                    int c = MinMaxParams.code(x, s, z, p.maxq());
                    codes[o * in + col] = c;
                    float e = (x - MinMaxParams.dequantize(c, s, z)) / d;
                    for (int j = i; j < count; j++) {
                        block[o * count + j] -= e * u[col * in + i1 + j];
                    }
                    err[o * count + i] = e;
                }
            }
            // Lazy batch update of everything right of the block: W[:, i2:] -= Err1 U[i1:i2, i2:], as one product
            // W[O, i2:] += (-Err1)[O, count] U[count, in - i2].
            if (i2 < in) {
                for (int j = 0; j < out * count; j++) {
                    err[j] = -err[j];
                }
                kernels.matmulNN(out, in - i2, count, err, 0, count, u, i1 * in + i2, in, w, i2, in, true);
            }
        }
        return codes;
    }

    @Override
    public String toString() {
        return "cpu";
    }
}
