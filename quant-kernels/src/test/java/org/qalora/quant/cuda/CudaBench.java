package org.qalora.quant.cuda;

import java.io.PrintStream;
import java.util.Random;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.ReferenceQuantKernels;

/**
 * The GPU benchmark, every ratio against a reference measured in the same run on the same device:
 * <ul>
 *   <li>device-to-device copy bandwidth (the memory ceiling; bytes read + written),</li>
 *   <li>fused int4 g32 {@code Y[T, O] = X[T, I] W^T} at T = 512 and 4096 with O = I = 4096, against cuBLAS on the
 *       dequantized weight: cublasSgemm (fp32), cublasGemmEx TF32 and BF16, and the two-step path "dequantize
 *       kernel, then cublasSgemm / TF32" that a large-token product could take instead,</li>
 *   <li>the transposed product dX = dY W at T = 512 (backward pass),</li>
 *   <li>GEMV 1 x 4096 x 11008 (weight bytes read per second against the copy bandwidth).</li>
 * </ul>
 * All inputs are random (codes, scales, real-valued zeros, Gaussian activations). Times come from CUDA events
 * around {@code reps} back-to-back launches after warm-up.
 */
public final class CudaBench {
    private final CudaQuantKernels gpu;
    private final QuantKernelModule kernels;
    private final CudaDriver cuda;
    private final PrintStream out;

    public CudaBench(CudaQuantKernels gpu, PrintStream out) {
        this.gpu = gpu;
        this.kernels = gpu.module();
        this.cuda = kernels.driver();
        this.out = out;
    }

    /** Milliseconds per call of {@code work}: 2 warm-ups, then enough calls for about 100 ms (at least 3). */
    private double millisPerCall(Runnable work) {
        work.run();
        work.run();
        cuda.synchronize();
        double one = cuda.timeMillis(work);
        int reps = (int) Math.max(3, Math.min(1000, 100 / Math.max(one, 1e-3)));
        return cuda.timeMillis(() -> {
            for (int r = 0; r < reps; r++) {
                work.run();
            }
        }) / reps;
    }

    public void run() {
        Random random = new Random(2026);
        double copyGBs = copyBandwidth();
        matmulShape(random, 512, 4096, 4096);
        matmulShape(random, 4096, 4096, 4096);
        crossover(random, 4096, 4096);
        gemv(random, copyGBs);
    }

    /** Only the GEMV part of {@link #run} (CudaSelfCheck {@code --gemv-bench}). */
    public void runGemv() {
        Random random = new Random(2026);
        gemv(random, copyBandwidth());
    }

    private void gemv(Random random, double copyGBs) {
        gemvShape(random, 4096, 11008, copyGBs);
        for (int[] shape : new int[][] {{4096, 4096}, {4096, 11008}, {11008, 4096}}) {
            gemvKernels(random, shape[0], shape[1], copyGBs);
        }
    }

    /**
     * The GEMV on one LLaMA-7B projection shape at 16 and 32 slices per column, cycling through 8 different weights
     * (more than the 50 MB L2 of an H100) so that W comes from DRAM as in a decode; then the fused decode products
     * (q, k, v in one launch; gate and up with SwiGLU in one launch) against the same products launched one by one.
     */
    private void gemvKernels(Random random, int in, int o, double copyGBs) {
        int copies = 8;
        CudaPreparedWeight[] w = new CudaPreparedWeight[copies];
        try (DeviceBuffer dx = DeviceBuffer.of(cuda, CudaParity.randomVector(random, in));
             DeviceBuffer xb = DeviceBuffer.allocate(cuda, 2L * in);
             DeviceBuffer dy = DeviceBuffer.allocate(cuda, 4L * 3 * o)) {
            kernels.toBf16(dx.pointer(), xb.pointer(), in);
            QuantizedMatrix m = CudaParity.randomMatrix(random, o, in, 4, 32);
            for (int c = 0; c < copies; c++) {
                w[c] = gpu.prepare(m);
            }
            long bytes = w[0].deviceBytes();
            int[] next = {0};
            for (int slices : new int[] {16, 32, 64}) {
                double ms = millisPerCall(() -> kernels.gemv(w[next[0]++ % copies], dx.pointer(), dy.pointer(), slices));
                out.printf("gemv int4 g32 1 x %d x %d, %2d slices: %7.4f ms, %4.0f GB/s, %.2f of copy%n", in, o, slices,
                        ms, bytes / (ms * 1e6), bytes / (ms * 1e6) / copyGBs);
            }
            double sliced = millisPerCall(() -> kernels.gemvBf16Sliced(w[next[0]++ % copies], xb.pointer(), dy.pointer()));
            double split = millisPerCall(() -> kernels.splitKGemv().gemv(new CudaPreparedWeight[] {w[next[0]++ % copies]},
                    xb.pointer(), new long[] {dy.pointer()}));
            out.printf("  bf16 one product: slice GEMV %.4f ms (%.2f of copy), split-K GEMV %.4f ms (%.2f of copy, %d"
                            + " chunks of 32 a split): %.2fx%n", sliced, bytes / (sliced * 1e6) / copyGBs, split,
                    bytes / (split * 1e6) / copyGBs, SplitKGemv.splitChunks(in), sliced / split);
            long y0 = dy.pointer(), y1 = y0 + 2L * o, y2 = y1 + 2L * o;
            double one3 = millisPerCall(() -> {
                for (int k = 0; k < 3; k++) {
                    kernels.gemvBf16(w[next[0]++ % copies], xb.pointer(), y0 + 2L * k * o);
                }
            });
            double fused3 = millisPerCall(() -> kernels.gemvBf16(new CudaPreparedWeight[] {w[next[0]++ % copies],
                    w[next[0]++ % copies], w[next[0]++ % copies]}, xb.pointer(), new long[] {y0, y1, y2}));
            double two = millisPerCall(() -> {
                kernels.gemvBf16(w[next[0]++ % copies], xb.pointer(), y0);
                kernels.gemvBf16(w[next[0]++ % copies], xb.pointer(), y1);
            });
            double swiglu = millisPerCall(() -> kernels.gemvSwigluBf16(w[next[0]++ % copies], w[next[0]++ % copies],
                    xb.pointer(), y2));
            out.printf("  bf16, 3 products one by one %.4f ms, fused %.4f ms (%.2f of copy): %.2fx; 2 products %.4f ms,"
                            + " fused with SwiGLU %.4f ms (%.2f of copy): %.2fx%n", one3, fused3,
                    3 * bytes / (fused3 * 1e6) / copyGBs, one3 / fused3, two, swiglu, 2 * bytes / (swiglu * 1e6) / copyGBs,
                    two / swiglu);
        } finally {
            for (CudaPreparedWeight p : w) {
                if (p != null) {
                    p.close();
                }
            }
        }
    }

    /** GB/s of a 1 GiB device-to-device copy, counting bytes read and written. */
    private double copyBandwidth() {
        long bytes = 1L << 30;
        try (DeviceBuffer a = DeviceBuffer.allocate(cuda, bytes); DeviceBuffer b = DeviceBuffer.allocate(cuda, bytes)) {
            cuda.fill(a.pointer(), 1f, bytes / 4);
            double ms = millisPerCall(() -> cuda.copyDeviceToDevice(a.pointer(), b.pointer(), bytes));
            double gbs = 2.0 * bytes / (ms * 1e6);
            out.printf("copy   1 GiB device-to-device: %.3f ms, %.0f GB/s (read + write)%n", ms, gbs);
            return gbs;
        }
    }

    private void matmulShape(Random random, int tokens, int o, int in) {
        QuantizedMatrix m = CudaParity.randomMatrix(random, o, in, 4, 32);
        float[] x = CudaParity.randomVector(random, tokens * in);  // [T, I]
        double flop = 2.0 * tokens * o * in;
        Cublas blas = Cublas.get();
        try (CudaPreparedWeight w = gpu.prepare(m);
             DeviceBuffer dx = DeviceBuffer.of(cuda, x);
             DeviceBuffer dy = DeviceBuffer.allocate(cuda, 4L * tokens * o);
             DeviceBuffer dyRef = DeviceBuffer.allocate(cuda, 4L * tokens * o);
             DeviceBuffer dense = DeviceBuffer.allocate(cuda, 4L * o * in);       // [O, I] fp32
             DeviceBuffer denseBf = DeviceBuffer.allocate(cuda, 2L * o * in);     // [O, I] bf16
             DeviceBuffer xBf = DeviceBuffer.allocate(cuda, 2L * tokens * in);    // [T, I] bf16
             DeviceBuffer dxT = DeviceBuffer.allocate(cuda, 4L * tokens * in)) { // [T, I] for dX
            kernels.dequantize(w, dense.pointer(), false);
            kernels.toBf16(dense.pointer(), denseBf.pointer(), (long) o * in);
            kernels.toBf16(dx.pointer(), xBf.pointer(), (long) tokens * in);

            double fused = millisPerCall(() -> kernels.matmul(w, dx.pointer(), tokens, dy.pointer(), false));
            double sgemm = millisPerCall(() -> blas.linear(Cublas.Precision.FP32, dense.pointer(), dx.pointer(),
                    tokens, o, in, dyRef.pointer()));
            double tf32 = millisPerCall(() -> blas.linear(Cublas.Precision.TF32, dense.pointer(), dx.pointer(),
                    tokens, o, in, dyRef.pointer()));
            double bf16 = millisPerCall(() -> blas.linear(Cublas.Precision.BF16, denseBf.pointer(), xBf.pointer(),
                    tokens, o, in, dyRef.pointer()));
            double deq = millisPerCall(() -> kernels.dequantize(w, dense.pointer(), false));
            double dxMs = millisPerCall(() -> kernels.matmulTransposed(w, dy.pointer(), tokens, dxT.pointer(),
                    false, false));

            // Sanity: the fused result against cublasSgemm on the dequantized weight (both fp32).
            blas.linear(Cublas.Precision.FP32, dense.pointer(), dx.pointer(), tokens, o, in, dyRef.pointer());
            kernels.matmul(w, dx.pointer(), tokens, dy.pointer(), false);
            float[] a = new float[tokens * o];
            float[] b = new float[tokens * o];
            cuda.copyToHost(dy.pointer(), a, 0, a.length);
            cuda.copyToHost(dyRef.pointer(), b, 0, b.length);
            double maxRel = maxRelativeDifference(a, b);

            out.printf("matmul int4 g32 T=%d O=%d I=%d (max rel. diff. fused vs sgemm %.2e)%n", tokens, o, in, maxRel);
            line("fused dequant-matmul", fused, flop, fused);
            line("cublasSgemm fp32 (dense W)", sgemm, flop, fused);
            line("cublasGemmEx TF32 (dense W)", tf32, flop, fused);
            line("cublasGemmEx BF16 (dense W)", bf16, flop, fused);
            line("dequantize + cublasSgemm", deq + sgemm, flop, fused);
            line("dequantize + GemmEx TF32", deq + tf32, flop, fused);
            out.printf("  %-30s %9.3f ms%n", "dequantize kernel alone", deq);
            line("fused dX = dY W (transposed)", dxMs, flop, fused);
        }
    }

    /**
     * Where "dequantize + cublasSgemm" overtakes the fused kernel as tokens grow (the threshold behind
     * {@link CudaQuantKernels#DEFAULT_CUBLAS_MIN_TOKENS}), for Y = X W^T and dX = dY W.
     */
    private void crossover(Random random, int o, int in) {
        QuantizedMatrix m = CudaParity.randomMatrix(random, o, in, 4, 32);
        Cublas blas = Cublas.get();
        int maxTokens = 256;
        float[] x = CudaParity.randomVector(random, maxTokens * Math.max(o, in));
        out.printf("crossover int4 g32 O=%d I=%d: ms per product, fused kernel vs dequantize + cublasSgemm%n", o, in);
        out.printf("  %6s %10s %10s %10s %10s%n", "T", "fused Y", "cublas Y", "fused dX", "cublas dX");
        try (CudaPreparedWeight w = gpu.prepare(m);
             DeviceBuffer dx = DeviceBuffer.of(cuda, x);
             DeviceBuffer dy = DeviceBuffer.allocate(cuda, 4L * maxTokens * Math.max(o, in));
             DeviceBuffer dense = DeviceBuffer.allocate(cuda, 4L * o * in)) {
            for (int tokens : new int[] {2, 8, 16, 32, 48, 64, 96, 128, 256}) {
                double fused = millisPerCall(() -> kernels.matmul(w, dx.pointer(), tokens, dy.pointer(), false));
                double viaBlas = millisPerCall(() -> {
                    kernels.dequantize(w, dense.pointer(), false);
                    blas.linear(Cublas.Precision.FP32, dense.pointer(), dx.pointer(), tokens, o, in, dy.pointer());
                });
                double fusedT = millisPerCall(() -> kernels.matmulTransposed(w, dx.pointer(), tokens, dy.pointer(),
                        false, false));
                double viaBlasT = millisPerCall(() -> {
                    kernels.dequantize(w, dense.pointer(), false);
                    blas.linearTransposed(dense.pointer(), dx.pointer(), tokens, o, in, dy.pointer(), false);
                });
                out.printf("  %6d %10.4f %10.4f %10.4f %10.4f%n", tokens, fused, viaBlas, fusedT, viaBlasT);
            }
        }
    }

    private void line(String what, double ms, double flop, double fusedMs) {
        out.printf("  %-30s %9.3f ms %9.0f GFLOP/s  time / fused %.2f%n", what, ms, flop / (ms * 1e6),
                ms / fusedMs);
    }

    private void gemvShape(Random random, int in, int o, double copyGBs) {
        QuantizedMatrix m = CudaParity.randomMatrix(random, o, in, 4, 32);
        float[] x = CudaParity.randomVector(random, in);
        try (CudaPreparedWeight w = gpu.prepare(m);
             DeviceBuffer dx = DeviceBuffer.of(cuda, x);
             DeviceBuffer dy = DeviceBuffer.allocate(cuda, 4L * o)) {
            long codeBytes = (long) in * o / 2;
            long bytes = w.deviceBytes();
            for (int slices : new int[] {4, 8, 16, 32}) {
                double t = millisPerCall(() -> kernels.gemv(w, dx.pointer(), dy.pointer(), slices));
                out.printf("  gemv with %2d slices per column: %8.4f ms, %5.0f GB/s of weight bytes%n", slices, t,
                        bytes / (t * 1e6));
            }
            double ms = millisPerCall(() -> kernels.gemv(w, dx.pointer(), dy.pointer()));
            float[] got = new float[o];
            cuda.copyToHost(dy.pointer(), got, 0, o);
            float[] want = new float[o];
            ReferenceQuantKernels ref = new ReferenceQuantKernels();
            ref.gemv(ref.prepare(m), x, 0, want, 0);
            out.printf("gemv int4 g32 1 x %d x %d (max rel. diff. vs CPU reference %.2e)%n", in, o,
                    maxRelativeDifference(got, want));
            out.printf("  default (%d slices): %9.4f ms, %.0f GB/s of weight bytes (%d code + %d fp32 scale/zero bytes) = %.0f%% of copy"
                            + " bandwidth; codes alone %.0f GB/s%n", QuantKernelModule.GEMV_SLICES, ms, bytes / (ms * 1e6), codeBytes,
                    bytes - codeBytes, 100 * bytes / (ms * 1e6) / copyGBs, codeBytes / (ms * 1e6));
        }
    }

    private static double maxRelativeDifference(float[] a, float[] b) {
        double maxAbs = 0;
        double maxDiff = 0;
        for (int e = 0; e < a.length; e++) {
            maxAbs = Math.max(maxAbs, Math.abs(b[e]));
            maxDiff = Math.max(maxDiff, Math.abs(a[e] - b[e]));
        }
        return maxDiff / Math.max(maxAbs, 1e-30);
    }
}
