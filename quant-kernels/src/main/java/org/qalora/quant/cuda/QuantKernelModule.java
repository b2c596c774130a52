package org.qalora.quant.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

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

    private static final java.util.concurrent.ConcurrentHashMap<Integer, LazyNative<QuantKernelModule>> INSTANCES =
            new java.util.concurrent.ConcurrentHashMap<>();

    private final CudaDriver cuda;
    private final String ptxName;
    private final MemorySegment dequantize;
    private final MemorySegment dequantizeNaive;
    private final MemorySegment dequantizeBf16;
    private final MemorySegment qmatmul;
    private final MemorySegment qmatmulNaive;
    private final MemorySegment qmatmulT;
    private final MemorySegment qmatmulTNaive;
    private final MemorySegment[] gemv = new MemorySegment[9];  // by bit width
    private final MemorySegment[] gemvBf16 = new MemorySegment[9];
    private final MemorySegment[] gemv3Bf16 = new MemorySegment[9];         // fused decode products (bf16)
    private final MemorySegment[] gemvResidualBf16 = new MemorySegment[9];
    private final MemorySegment[] gemvSwigluBf16 = new MemorySegment[9];
    private final MemorySegment f32ToBf16;
    private final SplitKGemv splitK;

    private QuantKernelModule(CudaDriver cuda) {
        this.cuda = cuda;
        ptxName = ptxName(cuda, "qalora_kernels");
        MemorySegment module = cuda.loadModule(readPtx(ptxName), ptxName);
        dequantize = cuda.function(module, "dequantize");
        dequantizeNaive = cuda.function(module, "dequantize_naive");
        dequantizeBf16 = cuda.function(module, "dequantize_bf16");
        qmatmul = cuda.function(module, "qmatmul");
        qmatmulNaive = cuda.function(module, "qmatmul_naive");
        qmatmulT = cuda.function(module, "qmatmul_t");
        qmatmulTNaive = cuda.function(module, "qmatmul_t_naive");
        for (int bits : new int[] {2, 3, 4, 8}) {
            gemv[bits] = cuda.function(module, "qgemv_b" + bits);
            gemvBf16[bits] = cuda.function(module, "qgemv_bf16_b" + bits);
            gemv3Bf16[bits] = cuda.function(module, "qgemv3_bf16_b" + bits);
            gemvResidualBf16[bits] = cuda.function(module, "qgemv_residual_bf16_b" + bits);
            gemvSwigluBf16[bits] = cuda.function(module, "qgemv_swiglu_bf16_b" + bits);
        }
        f32ToBf16 = cuda.function(module, "f32_to_bf16");
        splitK = new SplitKGemv(cuda);
    }

    /**
     * The PTX resource of kernel file {@code base} for this device: {@code sm_90} on Hopper and newer,
     * {@code compute_80} on Ampere and Ada; below compute capability 8.0 a {@link CudaException} that says so.
     */
    public static String ptxName(CudaDriver cuda, String base) {
        if (cuda.computeMajor() < 8) {
            throw new CudaException("device " + cuda.ordinal() + " (" + cuda.deviceName() + ") has compute capability "
                    + cuda.computeMajor() + "." + cuda.computeMinor() + "; the kernels need 8.0 (Ampere) or newer");
        }
        return base + (cuda.computeMajor() >= 9 ? ".sm_90.ptx" : ".compute_80.ptx");
    }

    /** Loads kernel file {@code base}'s PTX from the jar onto {@code cuda}'s device; returns the CUmodule. */
    public static MemorySegment loadModule(CudaDriver cuda, String base) {
        String name = ptxName(cuda, base);
        return cuda.loadModule(readPtx(name), name);
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

    /** True when the driver is available and the kernels load on device 0; never throws. */
    public static boolean available() {
        return available(0);
    }

    /** True when the driver is available and the kernels load on device {@code ordinal}; never throws. */
    public static boolean available(int ordinal) {
        return instance(ordinal).available();
    }

    /** Why {@link #available()} is false, or null. */
    public static String unavailableReason() {
        return unavailableReason(0);
    }

    public static String unavailableReason(int ordinal) {
        return instance(ordinal).unavailableReason();
    }

    public static QuantKernelModule get() {
        return get(0);
    }

    public static QuantKernelModule get(int ordinal) {
        return instance(ordinal).get();
    }

    private static LazyNative<QuantKernelModule> instance(int ordinal) {
        return INSTANCES.computeIfAbsent(ordinal,
                o -> new LazyNative<>(() -> new QuantKernelModule(CudaDriver.get(o))));
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

    /** out[O, I] = W rounded to bf16 (nearest even), row-major: what the tensor-core products read. */
    public void dequantizeBf16(DeviceWeight w, long out) {
        cuda.launch(dequantizeBf16, "dequantize_bf16", ceil(w.in(), 32), ceil(w.out(), 32), 1, 32, 8, 1, 0,
                w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.bits(), w.groupSize(), out);
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

    /**
     * Slices per output column in the GEMV (1..64; {@code -Dqalora.cuda.gemvSlices} to compare): measured on an H100
     * for every LLaMA-7B projection shape with the weights coming from DRAM (docs/PERFORMANCE.md, "Batch-1 decode on
     * the GPU").
     */
    public static final int GEMV_SLICES = Integer.getInteger("qalora.cuda.gemvSlices", 32);
    private static final int GEMV_COLUMNS = gemvColumns(GEMV_SLICES);

    /**
     * y[O] = W . x[I]; {@code slices} (1..64) threads share each output column's reduction. A block is 32 columns
     * up to 32 slices, 16 columns above (at most 1024 threads).
     */
    public void gemv(DeviceWeight w, long x, long y, int slices) {
        int cols = gemvColumns(slices);
        cuda.launch(gemv[w.bits()], "qgemv_b" + w.bits(), ceil(w.out(), cols), 1, 1, cols, slices, 1, 0,
                w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.groupSize(), x, y);
    }

    private static int gemvColumns(int slices) {
        if (slices < 1 || slices > 64) {
            throw new IllegalArgumentException("GEMV slices must be 1..64, got " + slices);
        }
        return slices > 32 ? 16 : 32;
    }

    /**
     * {@link #gemv} with bf16 {@code x} and {@code y} (fp32 arithmetic, the result rounded to nearest even once): a
     * decode step under mixed precision needs no conversion launches around it. The split-K GEMV where it is enabled
     * ({@code -Dqalora.cuda.splitKGemv=true}) and {@linkplain SplitKGemv#takes takes} the weight (group sizes in
     * multiples of 32, outputs in fours), else the slice GEMV.
     */
    public void gemvBf16(DeviceWeight w, long x, long y) {
        if (splitK(w, x)) {
            splitK.gemv(new DeviceWeight[] {w}, x, new long[] {y});
        } else {
            gemvBf16Sliced(w, x, y);
        }
    }

    /** Whether the bf16 GEMVs send {@code w} to the split-K kernels: enabled ({@link SplitKGemv#ENABLED}) and taken. */
    private static boolean splitK(DeviceWeight w, long x) {
        return SplitKGemv.ENABLED && SplitKGemv.takes(w, x);
    }

    /** The split-K kernels themselves, whatever the routing (their tests and benchmark). */
    SplitKGemv splitKGemv() { return splitK; }

    /** {@link #gemvBf16(DeviceWeight, long, long)} on the slice GEMV whatever the weight (the benchmark's baseline). */
    void gemvBf16Sliced(DeviceWeight w, long x, long y) {
        cuda.launch(gemvBf16[w.bits()], "qgemv_bf16_b" + w.bits(), ceil(w.out(), GEMV_COLUMNS), 1, 1, GEMV_COLUMNS,
                GEMV_SLICES, 1, 0,
                w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.groupSize(), x, y);
    }

    /**
     * {@code y[k] = W[k] . x} for one to three weights of one input width, bit width and group size (a decode step's
     * q, k and v) in one launch; each {@code y[k]} holds exactly what {@link #gemvBf16} would write.
     */
    public void gemvBf16(DeviceWeight[] w, long x, long[] y) {
        if (w.length < 1 || w.length > 3 || y.length != w.length) {
            throw new IllegalArgumentException("the fused GEMV takes 1 to 3 weights and as many outputs, got "
                    + w.length + " and " + y.length);
        }
        boolean allSplitK = true;
        for (DeviceWeight wk : w) {
            requireFusable(w[0], wk);
            allSplitK &= splitK(wk, x);
        }
        if (allSplitK) {
            splitK.gemv(w, x, y);
            return;
        }
        if (Arrays.stream(w).anyMatch(wk -> splitK(wk, x))) {
            for (int k = 0; k < w.length; k++) {  // each weight on the kernel its separate product would use
                gemvBf16(w[k], x, y[k]);
            }
            return;
        }
        gemv3Sliced(w, x, y);
    }

    private void gemv3Sliced(DeviceWeight[] w, long x, long[] y) {
        Object[] args = new Object[18];
        int blocks = 0;
        for (int k = 0; k < 3; k++) {
            DeviceWeight wk = k < w.length ? w[k] : null;
            if (wk != null) {
                blocks += ceil(wk.out(), GEMV_COLUMNS);
            }
            args[5 * k] = wk == null ? 0L : wk.q();
            args[5 * k + 1] = wk == null ? 0L : wk.scales();
            args[5 * k + 2] = wk == null ? 0L : wk.zeros();
            args[5 * k + 3] = wk == null ? 0 : wk.out();
            args[5 * k + 4] = wk == null ? 0L : y[k];
        }
        args[15] = w[0].in();
        args[16] = w[0].groupSize();
        args[17] = x;
        cuda.launch(gemv3Bf16[w[0].bits()], "qgemv3_bf16_b" + w[0].bits(), blocks, 1, 1, GEMV_COLUMNS, GEMV_SLICES, 1,
                0, args);
    }

    /**
     * {@code out = residual + W . x} for a bf16 {@code x}: the product rounded to bf16 when {@code productBf16} (as
     * a gemvBf16 into a bf16 buffer would), then added in fp32 to the residual and stored in out's type (each flag:
     * 1 bf16, 0 fp32), as a separate add kernel would.
     */
    public void gemvResidualBf16(DeviceWeight w, long x, boolean productBf16, long residual, boolean residualBf16,
                                 long out, boolean outBf16) {
        if (splitK(w, x)) {
            splitK.gemvResidual(w, x, productBf16, residual, residualBf16, out, outBf16);
            return;
        }
        cuda.launch(gemvResidualBf16[w.bits()], "qgemv_residual_bf16_b" + w.bits(), ceil(w.out(), GEMV_COLUMNS), 1, 1,
                GEMV_COLUMNS, GEMV_SLICES, 1, 0, w.q(), w.scales(), w.zeros(), w.out(), w.in(), w.groupSize(), x,
                productBf16 ? 1 : 0, residual, residualBf16 ? 1 : 0, out, outBf16 ? 1 : 0);
    }

    /**
     * {@link #gemvResidualBf16}, then {@code normed = w_norm * (out * rstd)}, {@code rstd[0] = 1 / sqrt(mean(out^2) +
     * eps)} with the bits of the RMSNorm kernel of {@code training_kernels.cu} (one row; {@code norm} fp32 [O],
     * {@code normed} fp32 or bf16): one launch where the split-K GEMV takes {@code w}. Returns false, having launched
     * nothing, where it does not; the caller then runs the two steps apart.
     */
    public boolean gemvResidualNormBf16(DeviceWeight w, long x, boolean productBf16, long residual,
                                        boolean residualBf16, long out, boolean outBf16, long norm, float eps,
                                        long normed, boolean normedBf16, long rstd) {
        if (!splitK(w, x)) {
            return false;
        }
        splitK.gemvResidualNorm(w, x, productBf16, residual, residualBf16, out, outBf16, norm, eps, normed,
                normedBf16, rstd);
        return true;
    }

    /**
     * {@link #gemvBf16(DeviceWeight[], long, long[])} of one decode row's q, k and v into bf16 {@code y}, then what
     * the {@code rope_cache_write} kernel of {@code training_kernels.cu} does, with its bits: q and k rotated in place
     * by {@code cos, sin} (fp32, the row's table row [headDim / 2]), k and v copied into row {@code info[0] *
     * capacity + info[1]} of the caches (fp32 or bf16, [rows, kv width]). One launch where the split-K GEMV takes all
     * three weights and a column tile of 128 holds whole heads (headDim a power of two from 8 to 128, k and v of one
     * width); returns false, having launched nothing, otherwise.
     */
    public boolean gemvRopeCacheBf16(DeviceWeight[] qkv, long x, long[] y, long cos, long sin, long kCache,
                                     long vCache, boolean cacheBf16, long info, int capacity, int headDim) {
        if (qkv.length != 3 || y.length != 3 || headDim < 8 || headDim > 128 || Integer.bitCount(headDim) != 1
                || qkv[0].out() % headDim != 0 || qkv[1].out() % headDim != 0 || qkv[1].out() != qkv[2].out()) {
            return false;
        }
        for (DeviceWeight wk : qkv) {
            if (!fusable(qkv[0], wk) || !splitK(wk, x)) {
                return false;
            }
        }
        splitK.gemvRope(qkv, x, y, cos, sin, kCache, vCache, cacheBf16, info, capacity, headDim);
        return true;
    }

    /**
     * {@code out = silu(Wg . x) * (Wu . x)}, bf16, each product rounded to bf16 first (as two gemvBf16 then a SwiGLU
     * kernel).
     */
    public void gemvSwigluBf16(DeviceWeight gate, DeviceWeight up, long x, long out) {
        requireFusable(gate, up);
        if (gate.out() != up.out()) {
            throw new IllegalArgumentException("gate and up must have one output width, got " + gate.out() + " and "
                    + up.out());
        }
        boolean g = splitK(gate, x), u = splitK(up, x);
        if (g != u) {  // they share shapes, so only a misaligned device pointer can do this
            throw new IllegalArgumentException("gate and up weights must both be 16-byte aligned or neither: gate "
                    + (g ? "is" : "is not") + ", up " + (u ? "is" : "is not"));
        }
        if (g) {
            splitK.gemvSwiglu(gate, up, x, out);
            return;
        }
        cuda.launch(gemvSwigluBf16[gate.bits()], "qgemv_swiglu_bf16_b" + gate.bits(), ceil(gate.out(), GEMV_COLUMNS),
                1, 1, GEMV_COLUMNS, GEMV_SLICES, 1, 0, gate.q(), gate.scales(), gate.zeros(), up.q(), up.scales(), up.zeros(), gate.out(),
                gate.in(), gate.groupSize(), x, out);
    }

    /** Whether {@link #gemvBf16(DeviceWeight[], long, long[])} and the fused GEMVs can take {@code a} with {@code b}. */
    public static boolean fusable(DeviceWeight a, DeviceWeight b) {
        return a.in() == b.in() && a.bits() == b.bits() && a.groupSize() == b.groupSize();
    }

    private static void requireFusable(DeviceWeight a, DeviceWeight b) {
        if (!fusable(a, b)) {
            throw new IllegalArgumentException("fused GEMV weights must share input width, bits and group size, got "
                    + a.in() + "/" + a.bits() + "/" + a.groupSize() + " and " + b.in() + "/" + b.bits() + "/"
                    + b.groupSize());
        }
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
