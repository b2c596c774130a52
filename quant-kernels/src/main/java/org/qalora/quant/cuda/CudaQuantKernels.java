package org.qalora.quant.cuda;

import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.PreparedWeight;
import org.qalora.quant.kernels.QuantKernels;

/**
 * {@link QuantKernels} on the GPU: weights live on the device ({@link CudaPreparedWeight}); the host-array
 * methods copy activations in and results out on every call (simple, correct, and what the CPU-shaped worker
 * needs today). A GPU-resident caller uses the device-pointer variants ({@code *Device}), which only launch.
 *
 * <p>Which kernel runs (measured on the H200, docs/PERFORMANCE.md "cuda"): one token takes the GEMV; below
 * {@link #cublasMinTokens()} tokens the fused dequantize-multiply kernel; from there on the weight is dequantized
 * into a scratch buffer ({@code 4 * O * I} bytes, kept and reused across calls) and multiplied by cublasSgemm.
 * With the default threshold (2) every multi-token product takes cuBLAS, which measured faster at every token
 * count; the fused kernel serves machines without cuBLAS and callers that ask for it with a higher threshold. Both paths compute in fp32 (no TF32), so results agree with
 * {@link org.qalora.quant.kernels.ReferenceQuantKernels} within the same fp32 rounding bound. Without cuBLAS
 * the fused kernel does everything.
 *
 * <p>All calls run on the default stream and return after the result is complete (the copy back to the host
 * waits for the kernel). Thread-safe: calls from several threads serialise on the device.
 */
public final class CudaQuantKernels implements QuantKernels, AutoCloseable {
    /**
     * Token count from which "dequantize + cublasSgemm" is used. Measured on the H200 (PERFORMANCE.md "cuda"): it
     * beats the fused kernel at every token count from 2 (4096 x 4096 int4: 0.12 vs 0.88 ms at T = 2, 0.44 vs
     * 0.96 ms at T = 512), so the fused kernel is the fallback where cuBLAS is missing.
     */
    public static final int DEFAULT_CUBLAS_MIN_TOKENS = 2;

    private final QuantKernelModule kernels;
    private final CudaDriver cuda;
    private final Cublas blas;             // null: cuBLAS missing, the fused kernels do everything
    private final int cublasMinTokens;
    private DeviceBuffer scratch;          // [O, I] fp32 dequantized weight for the cuBLAS path; guarded by this

    /** Kernels on device 0. Throws {@link CudaException} (with the reason) where CUDA is unavailable. */
    public CudaQuantKernels() {
        this(DEFAULT_CUBLAS_MIN_TOKENS);
    }

    /**
     * @param cublasMinTokens token count from which products go through "dequantize + cublasSgemm";
     *                        {@link Integer#MAX_VALUE} keeps everything on the fused kernels
     */
    public CudaQuantKernels(int cublasMinTokens) {
        if (cublasMinTokens < 2) {
            throw new IllegalArgumentException("cublasMinTokens must be at least 2 (one token is the GEMV), got "
                    + cublasMinTokens);
        }
        this.kernels = QuantKernelModule.get();
        this.cuda = kernels.driver();
        this.blas = Cublas.available() ? Cublas.get() : null;
        this.cublasMinTokens = blas == null ? Integer.MAX_VALUE : cublasMinTokens;
    }

    /** The token count from which products use cuBLAS ({@link Integer#MAX_VALUE} when cuBLAS is missing). */
    public int cublasMinTokens() {
        return cublasMinTokens;
    }

    /** Frees the scratch buffer of the cuBLAS path (prepared weights are freed on their own). */
    @Override
    public synchronized void close() {
        if (scratch != null) {
            scratch.close();
            scratch = null;
        }
    }

    /** The [O, I] fp32 scratch, grown to fit; callers hold this object's lock while its content is in use. */
    private DeviceBuffer scratchFor(CudaPreparedWeight w) {
        long bytes = 4L * w.out() * w.in();
        if (scratch == null || scratch.bytes() < bytes) {
            close();
            scratch = DeviceBuffer.allocate(cuda, bytes);
        }
        return scratch;
    }

    /** True when this machine can run these kernels; see {@link #unavailableReason()}. Never throws. */
    public static boolean available() {
        return QuantKernelModule.available();
    }

    public static String unavailableReason() {
        return QuantKernelModule.unavailableReason();
    }

    public QuantKernelModule module() {
        return kernels;
    }

    @Override
    public CudaPreparedWeight prepare(QuantizedMatrix m) {
        DeviceBuffer q = DeviceBuffer.of(cuda, m.qweight());
        DeviceBuffer s = DeviceBuffer.of(cuda, m.scales());
        DeviceBuffer z = DeviceBuffer.of(cuda, m.zeros());
        return new CudaPreparedWeight(m, q, s, z);
    }

    /** Uploads only the new zeros; codes and scales stay shared with {@code w} on the device. */
    @Override
    public CudaPreparedWeight withZeros(PreparedWeight w, float[] zeros) {
        CudaPreparedWeight cw = weightOf(w);
        QuantizedMatrix merged = cw.source().withZeros(zeros);
        return new CudaPreparedWeight(merged, cw.codesBuffer(), cw.scalesBuffer(), DeviceBuffer.of(cuda, zeros));
    }

    private static CudaPreparedWeight weightOf(PreparedWeight w) {
        if (!(w instanceof CudaPreparedWeight cw)) {
            throw new IllegalArgumentException("weight " + w + " was prepared by another QuantKernels implementation;"
                    + " prepare it with CudaQuantKernels");
        }
        return cw;
    }

    private static void checkMatrix(String name, float[] a, int off, long rows, long cols) {
        long need = rows * cols;
        if (off < 0 || off + need > a.length) {
            throw new IllegalArgumentException(name + ": [" + rows + ", " + cols + "] at offset " + off
                    + " needs " + (off + need) + " elements, array has " + a.length);
        }
    }

    private static void checkTokens(int tokens) {
        if (tokens <= 0) {
            throw new IllegalArgumentException("token count must be positive, got " + tokens);
        }
    }

    @Override
    public void matmul(PreparedWeight w, float[] x, int xOff, int tokens, float[] y, int yOff) {
        CudaPreparedWeight cw = weightOf(w);
        checkTokens(tokens);
        checkMatrix("x", x, xOff, tokens, cw.in());
        checkMatrix("y", y, yOff, tokens, cw.out());
        try (DeviceBuffer dx = DeviceBuffer.allocate(cuda, (long) tokens * cw.in() * 4);
             DeviceBuffer dy = DeviceBuffer.allocate(cuda, (long) tokens * cw.out() * 4)) {
            cuda.copyToDevice(x, xOff, tokens * cw.in(), dx.pointer());
            matmulDevice(cw, dx.pointer(), tokens, dy.pointer());
            cuda.copyToHost(dy.pointer(), y, yOff, tokens * cw.out());
        }
    }

    @Override
    public void matmulTransposed(PreparedWeight w, float[] dy, int dyOff, int tokens, float[] dx, int dxOff,
                                 boolean accumulate) {
        CudaPreparedWeight cw = weightOf(w);
        checkTokens(tokens);
        checkMatrix("dy", dy, dyOff, tokens, cw.out());
        checkMatrix("dx", dx, dxOff, tokens, cw.in());
        try (DeviceBuffer ddy = DeviceBuffer.allocate(cuda, (long) tokens * cw.out() * 4);
             DeviceBuffer ddx = DeviceBuffer.allocate(cuda, (long) tokens * cw.in() * 4)) {
            cuda.copyToDevice(dy, dyOff, tokens * cw.out(), ddy.pointer());
            if (accumulate) {
                cuda.copyToDevice(dx, dxOff, tokens * cw.in(), ddx.pointer());
            }
            matmulTransposedDevice(cw, ddy.pointer(), tokens, ddx.pointer(), accumulate);
            cuda.copyToHost(ddx.pointer(), dx, dxOff, tokens * cw.in());
        }
    }

    @Override
    public void gemv(PreparedWeight w, float[] x, int xOff, float[] y, int yOff) {
        CudaPreparedWeight cw = weightOf(w);
        checkMatrix("x", x, xOff, 1, cw.in());
        checkMatrix("y", y, yOff, 1, cw.out());
        try (DeviceBuffer dx = DeviceBuffer.allocate(cuda, (long) cw.in() * 4);
             DeviceBuffer dy = DeviceBuffer.allocate(cuda, (long) cw.out() * 4)) {
            cuda.copyToDevice(x, xOff, cw.in(), dx.pointer());
            gemvDevice(cw, dx.pointer(), dy.pointer());
            cuda.copyToHost(dy.pointer(), y, yOff, cw.out());
        }
    }

    @Override
    public void dequantize(PreparedWeight w, float[] out) {
        CudaPreparedWeight cw = weightOf(w);
        checkMatrix("out", out, 0, cw.out(), cw.in());
        try (DeviceBuffer d = DeviceBuffer.allocate(cuda, (long) cw.out() * cw.in() * 4)) {
            dequantizeDevice(cw, d.pointer());
            cuda.copyToHost(d.pointer(), out, 0, cw.out() * cw.in());
        }
    }

    // ---- device-pointer variants: arguments are CUdeviceptr values of float arrays with the shapes above ----------

    /** {@code y[T, O] = x[T, I] . W^T} on device memory; asynchronous on the default stream. */
    public void matmulDevice(CudaPreparedWeight w, long x, int tokens, long y) {
        checkTokens(tokens);
        if (tokens == 1) {
            kernels.gemv(w, x, y);  // one token: the bandwidth-bound kernel beats a 1/128-full tile
        } else if (tokens < cublasMinTokens) {
            kernels.matmul(w, x, tokens, y, false);
        } else {
            // Stream order keeps dequantize -> gemm -> next call's dequantize; the lock keeps two threads from
            // interleaving their pairs on the shared scratch.
            synchronized (this) {
                DeviceBuffer dense = scratchFor(w);
                kernels.dequantize(w, dense.pointer(), false);
                blas.linear(Cublas.Precision.FP32, dense.pointer(), x, tokens, w.out(), w.in(), y);
            }
        }
    }

    /** {@code dx[T, I] (+)= dy[T, O] . W} on device memory. */
    public void matmulTransposedDevice(CudaPreparedWeight w, long dy, int tokens, long dx, boolean accumulate) {
        checkTokens(tokens);
        if (tokens < cublasMinTokens) {
            kernels.matmulTransposed(w, dy, tokens, dx, accumulate, false);
        } else {
            synchronized (this) {
                DeviceBuffer dense = scratchFor(w);
                kernels.dequantize(w, dense.pointer(), false);
                blas.linearTransposed(dense.pointer(), dy, tokens, w.out(), w.in(), dx, accumulate);
            }
        }
    }

    /** {@code y[O] = W . x[I]} on device memory. */
    public void gemvDevice(CudaPreparedWeight w, long x, long y) {
        kernels.gemv(w, x, y);
    }

    /** {@code out[O, I] = W} on device memory. */
    public void dequantizeDevice(CudaPreparedWeight w, long out) {
        kernels.dequantize(w, out, false);
    }
}
