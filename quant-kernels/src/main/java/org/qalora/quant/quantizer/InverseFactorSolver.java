package org.qalora.quant.quantizer;

import org.qalora.quant.kernels.BlockedCholesky;
import org.qalora.quant.kernels.KernelPool;

/**
 * GPTQ's {@code O(n^3)} step: {@code U} upper triangular with {@code H^-1 = U^T U} for a damped, symmetric positive
 * definite Hessian, the reference's {@code cholesky(cholesky_inverse(cholesky(H)), upper=True)}. Damping, dead
 * inputs and act-order are {@link GptqQuantizer#prepare}'s, before this is called, whichever solver runs it.
 *
 * <p>Two implementations: {@link #CPU} ({@link BlockedCholesky}, bit-identical to the plain {@code CholeskyMath})
 * and {@code org.qalora.quant.cuda.CudaGptqSolve} (cuSOLVER on a GPU: the same math, another rounding order, so
 * not the same bits). {@link GptqSolve} chooses between them.
 */
@FunctionalInterface
public interface InverseFactorSolver {
    /** The blocked Vector API solve on the shared kernel pool. */
    InverseFactorSolver CPU = new InverseFactorSolver() {
        @Override
        public double[] upperCholeskyOfInverse(double[] h, int n, String name) {
            return BlockedCholesky.upperCholeskyOfInverse(h, n, name, KernelPool.shared());
        }

        @Override
        public String toString() {
            return "cpu";
        }
    };

    /**
     * @param h    {@code [n, n]} row-major, symmetric; not modified
     * @param name the layer, for the error when {@code h} is not positive definite
     * @return U, {@code [n, n]} row-major with zeros below the diagonal
     * @throws IllegalStateException when {@code h} is not positive definite, naming the column and the fix
     */
    double[] upperCholeskyOfInverse(double[] h, int n, String name);
}
