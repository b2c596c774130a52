package org.qalora.quant.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.qalora.quant.quantizer.InverseFactorSolver;

/**
 * GPTQ's inverse-Hessian factor on the GPU: {@code U} upper triangular with {@code H^-1 = U^T U}, the same three
 * steps as the CPU solve ({@code CholeskyMath} / {@code BlockedCholesky}), in float64, by cuSOLVER ({@link Cusolver}):
 * <ol>
 *   <li>{@code potrf}: {@code H = L L^T};
 *   <li>{@code potri}: {@code H^-1 = L^-T L^-1} from L (the CPU inverts L, then multiplies: the same product);
 *   <li>{@code potrf} of {@code H^-1 = Lh Lh^T}; {@code U = Lh^T}.
 * </ol>
 * Layout: cuSOLVER is column-major and works on the column-major lower triangle, which is the row-major upper one.
 * So the row-major {@code [n, n]} Hessian is uploaded as it is (it is symmetric), and the final lower factor
 * {@code Lh}, read back row-major, is already {@code Lh^T = U} in the upper triangle; the lower triangle, which
 * cuSOLVER never touches and so still holds H, is zeroed on the host. One device buffer of {@code n^2} doubles plus
 * cuSOLVER's workspace (at n = 11008: 0.97 GB and a few MB).
 *
 * <p>Not bit-identical to the CPU: cuSOLVER blocks and orders its sums differently (and may use the float64 tensor
 * cores' fused multiply-adds); on a well-conditioned Hessian the factors agree within {@link #CPU_AGREEMENT}
 * ({@code CudaGptqSolveTest}). Reruns on the same GPU model and library give
 * the same bits. Damping, dead inputs and act-order stay on the CPU ({@code GptqQuantizer.prepare}, O(n^2)).
 */
public final class CudaGptqSolve implements InverseFactorSolver {
    /**
     * The bound on {@link #relativeDifference} between this solve's factor and the CPU's for a damped Hessian of
     * condition number up to about 1e4 to 1e5 (1% damping of a real calibration Hessian): above what float64
     * rounding amplified by that condition number allows for (about 1e-16 x 1e5), far below what would change a GPTQ
     * code (the factor is rounded to float32, 6e-8, before it is used; CudaGptqSolveTest's emulation).
     */
    public static final double CPU_AGREEMENT = 1e-9;

    private final int ordinal;

    /** On GPU {@code ordinal}; nothing is loaded until the first solve. */
    public CudaGptqSolve(int ordinal) {
        if (ordinal < 0) {
            throw new IllegalArgumentException("CUDA device ordinals are 0, 1, ...; got " + ordinal);
        }
        this.ordinal = ordinal;
    }

    /** Why GPU {@code ordinal} cannot run the solve (no driver, no device, no cuSOLVER), or null when it can. */
    public static String unusableReason(int ordinal) {
        return Cusolver.available(ordinal) ? null : Cusolver.unavailableReason(ordinal);
    }

    public int ordinal() { return ordinal; }

    @Override
    public double[] upperCholeskyOfInverse(double[] h, int n, String name) {
        if (h.length != (long) n * n) {
            throw new IllegalArgumentException(name + ": the Hessian has " + h.length + " entries, not " + n + " x " + n);
        }
        Cusolver solver = Cusolver.get(ordinal);
        CudaDriver cuda = solver.driver();
        double[] u = new double[n * n];
        MemorySegment host = MemorySegment.ofArray(u);
        // One solve at a time per device: the handle is shared and the buffers are large.
        synchronized (solver) {
            try (DeviceBuffer a = DeviceBuffer.allocateCollecting(cuda, 8L * n * n);
                 DeviceBuffer info = DeviceBuffer.allocate(cuda, 4)) {
                cuda.copyToDevice(MemorySegment.ofArray(h), a.pointer());
                int lwork = solver.workspaceDoubles(n, a.pointer());
                try (DeviceBuffer work = DeviceBuffer.allocateCollecting(cuda, 8L * lwork)) {
                    int k = solver.choleskyLower(n, a.pointer(), work.pointer(), lwork, info.pointer());
                    if (k != 0) {
                        throw notPositiveDefinite(name, "the damped Hessian", k);
                    }
                    k = solver.inverseFromCholeskyLower(n, a.pointer(), work.pointer(), lwork, info.pointer());
                    if (k != 0) {
                        throw new IllegalStateException(name + ": the Cholesky factor of the damped Hessian has a zero"
                                + " at column " + (k - 1) + " (cusolverDnDpotri devInfo " + k + "); use a larger"
                                + " damp_percent (qalora quantize --damp-percent) or more calibration data");
                    }
                    k = solver.choleskyLower(n, a.pointer(), work.pointer(), lwork, info.pointer());
                    if (k != 0) {
                        throw notPositiveDefinite(name, "the inverse of the damped Hessian (ill-conditioned)", k);
                    }
                }
                cuda.copyToHost(a.pointer(), host);
            }
        }
        for (int i = 0; i < n; i++) {
            double d = u[i * n + i];
            if (!(d > 0) || Double.isInfinite(d)) { // NaN in H passes potrf's pivot test: stop here, as the CPU would
                throw notPositiveDefinite(name, "the damped Hessian (not finite: NaN or infinity in it)", i + 1);
            }
            Arrays.fill(u, i * n, i * n + i, 0);      // below the diagonal: still H's entries
        }
        return u;
    }

    /** The CPU's message ({@code BlockedCholesky}), with devInfo's 1-based k turned into the 0-based column. */
    private static IllegalStateException notPositiveDefinite(String name, String what, int devInfo) {
        return new IllegalStateException(name + ": " + what + " is not positive definite at column " + (devInfo - 1)
                + " (cuSOLVER potrf devInfo " + devInfo + "); use more calibration data or a larger damp_percent"
                + " (qalora quantize --damp-percent)");
    }

    /** {@code max |a - b| / max |b|}: the normwise relative difference of two factors (0 for two zero matrices). */
    public static double relativeDifference(double[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("factors of " + a.length + " and " + b.length + " entries");
        }
        double diff = 0;
        double scale = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs(a[i] - b[i]);
            diff = d > diff || Double.isNaN(d) ? d : diff;  // a NaN anywhere makes the difference NaN
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return scale == 0 ? diff : diff / scale;
    }

    @Override
    public String toString() {
        return "gpu:" + ordinal + " (cuSOLVER)";
    }
}
