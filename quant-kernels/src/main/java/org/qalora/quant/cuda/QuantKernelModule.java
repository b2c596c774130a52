package org.qalora.quant.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;

/**
 * The kernels of {@code src/main/cuda/qalora_kernels.cu}, loaded from the PTX that the build put into the jar, as
 * typed launchers over device pointers. Grids and blocks are decided here, next to the kernels' own layout
 * comments, so callers only pass shapes.
 *
 * <p>The PTX is picked by compute capability: {@code sm_90} on Hopper and newer, {@code compute_80} PTX (which
 * the driver JIT-compiles) on Ampere and Ada.
 */
public final class QuantKernelModule {
    static final String RESOURCE_DIR = "/org/qalora/quant/cuda/";
    private static final int TILE = 128;  // TM = TN in the .cu

    private static final LazyNative<QuantKernelModule> INSTANCE =
            new LazyNative<>(() -> new QuantKernelModule(CudaDriver.get()));

    private final CudaDriver cuda;
    private final String ptxName;
    private final MemorySegment dequantize;
    private final MemorySegment dequantizeNaive;
    private final MemorySegment qmatmul;
    private final MemorySegment qmatmulNaive;
    private final MemorySegment qmatmulT;
    private final MemorySegment qmatmulTNaive;
    private final MemorySegment[] gemv = new MemorySegment[9];  // by bit width
    private final MemorySegment f32ToBf16;

    private QuantKernelModule(CudaDriver cuda) {
        this.cuda = cuda;
        ptxName = cuda.computeMajor() >= 9 ? "qalora_kernels.sm_90.ptx" : "qalora_kernels.compute_80.ptx";
        if (cuda.computeMajor() < 8) {
            throw new CudaException("device " + cuda.deviceName() + " has compute capability " + cuda.computeMajor()
                    + "." + cuda.computeMinor() + "; the kernels need 8.0 or newer");
        }
        MemorySegment module = cuda.loadModule(readPtx(ptxName), ptxName);
        dequantize = cuda.function(module, "dequantize");
        dequantizeNaive = cuda.function(module, "dequantize_naive");
        qmatmul = cuda.function(module, "qmatmul");
        qmatmulNaive = cuda.function(module, "qmatmul_naive");
        qmatmulT = cuda.function(module, "qmatmul_t");
        qmatmulTNaive = cuda.function(module, "qmatmul_t_naive");
        for (int bits : new int[] {2, 3, 4, 8}) {
            gemv[bits] = cuda.function(module, "qgemv_b" + bits);
        }
        f32ToBf16 = cuda.function(module, "f32_to_bf16");
    }

    static byte[] readPtx(String name) {
        try (InputStream in = QuantKernelModule.class.getResourceAsStream(RESOURCE_DIR + name)) {
            if (in == null) {
                throw new CudaException("PTX resource " + RESOURCE_DIR + name + " is not on the class path: this"
                        + " quant-kernels jar was built without nvcc (the build log says 'CUDA: PTX skipped');"
                        + " rebuild it on a machine with /usr/local/bin/nvcc");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new CudaException("cannot read PTX resource " + name + ": " + e.getMessage());
        }
    }

    /** True when the driver is available and the kernels load; never throws. */
    public static boolean available() {
        return INSTANCE.available();
    }

    /** Why {@link #available()} is false, or null. */
    public static String unavailableReason() {
        return INSTANCE.unavailableReason();
    }

    public static QuantKernelModule get() {
        return INSTANCE.get();
    }

    public CudaDriver driver() { return cuda; }

    public String ptxName() { return ptxName; }

    private static int ceil(long a, int b) {
        return (int) ((a + b - 1) / b);
    }

    // All launchers: q [I*bits/32, O] uint32, scales/zeros [I/groupSize, O] float (device pointers).

    /** out[O, I] = W, row-major. */
    public void dequantize(DeviceWeight w, long out, boolean naive) {
        if (naive) {
            cuda.launch(dequantizeNaive, "dequantize_naive", ceil((long) w.out() * w.in(), 256), 1, 1, 256, 1, 1, 0,
                    w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), out);
        } else {
            cuda.launch(dequantize, "dequantize", ceil(w.in(), 32), ceil(w.out(), 32), 1, 32, 8, 1, 0,
                    w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), out);
        }
    }

    /** y[T, O] = x[T, I] . W^T. */
    public void matmul(DeviceWeight w, long x, int tokens, long y, boolean naive) {
        if (naive) {
            cuda.launch(qmatmulNaive, "qmatmul_naive", ceil((long) tokens * w.out(), 256), 1, 1, 256, 1, 1, 0,
                    w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), x, tokens, y);
        } else {
            cuda.launch(qmatmul, "qmatmul", ceil(w.out(), TILE), ceil(tokens, TILE), 1, 256, 1, 1, 0,
                    w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), x, tokens, y);
        }
    }

    /** dx[T, I] (+)= dy[T, O] . W. */
    public void matmulTransposed(DeviceWeight w, long dy, int tokens, long dx, boolean accumulate, boolean naive) {
        int acc = accumulate ? 1 : 0;
        if (naive) {
            cuda.launch(qmatmulTNaive, "qmatmul_t_naive", ceil((long) tokens * w.in(), 256), 1, 1, 256, 1, 1, 0,
                    w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), dy, tokens, dx, acc);
        } else {
            cuda.launch(qmatmulT, "qmatmul_t", ceil(w.in(), TILE), ceil(tokens, TILE), 1, 256, 1, 1, 0,
                    w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), dy, tokens, dx, acc);
        }
    }

    /** y[O] = W . x[I] with the default number of input slices per column. */
    public void gemv(DeviceWeight w, long x, long y) {
        gemv(w, x, y, GEMV_SLICES);
    }

    /** Slices per output column in the GEMV (block 32 x slices); measured best on the H200, PERFORMANCE.md. */
    public static final int GEMV_SLICES = 16;

    /** y[O] = W . x[I]; {@code slices} (1..32) threads share each output column's reduction. */
    public void gemv(DeviceWeight w, long x, long y, int slices) {
        if (slices < 1 || slices > 32) {
            throw new IllegalArgumentException("GEMV slices must be 1..32, got " + slices);
        }
        cuda.launch(gemv[w.bits()], "qgemv_b" + w.bits(), ceil(w.out(), 32), 1, 1, 32, slices, 1, 0,
                w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.groupSize(), x, y);
    }

    /** bf16[n] = round-to-nearest-even(f32[n]), for the cuBLAS bf16 comparison. */
    public void toBf16(long in, long out, long n) {
        cuda.launch(f32ToBf16, "f32_to_bf16", ceil(n, 256), 1, 1, 256, 1, 1, 0, in, out, n);
    }

    /** A quantized weight's device pointers and shape: what every launcher takes. */
    public interface DeviceWeight {
        long q();
        long scales();
        long zeros();
        int out();
        int in();
        int bits();
        int groupSize();
    }
}
