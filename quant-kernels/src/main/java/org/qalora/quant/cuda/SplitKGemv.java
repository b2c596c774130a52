package org.qalora.quant.cuda;

import java.lang.foreign.MemorySegment;
import org.qalora.quant.cuda.QuantKernelModule.DeviceWeight;

/**
 * The split-K decode GEMVs of {@code src/main/cuda/splitk_gemv.cu} (bf16 input and output, fp32 arithmetic) and
 * the device workspace where their input splits meet: one per device, allocated when the module loads (never inside a
 * graph capture, which cannot allocate) and shared by every launch, which is safe because all launches of a device go
 * to the legacy default stream or to the one capture stream that synchronises with it ({@link CudaGraphs}), so two
 * GEMVs never run at once.
 *
 * <p>A column's sum depends on the input width only (the split size {@link #splitChunks} is a function of it), so a
 * weight gives the same bits alone, fused with others of its input, or fused with its residual add or SwiGLU.
 * {@link #takes} says which weights the kernels handle; {@link QuantKernelModule} sends the others to the slice GEMV.
 */
final class SplitKGemv {
    private static final int COLUMNS_PER_TILE = 128;   // SK_COLS in the .cu
    private static final int THREADS = 256;            // SK_THREADS
    private static final int MAX_SPLITS = 64;
    /** Workspace: fp32 partial sums (16 MB) and one counter per column tile (128 KB). */
    private static final long PARTIAL_FLOATS = 4L << 20;
    private static final int COUNTERS = 32 << 10;
    /**
     * Chunks of 32 inputs per split (at least; more when the input would need over {@value #MAX_SPLITS} splits):
     * {@code -Dqalora.cuda.gemvSplitChunks} to compare. 32 measured best on an H100 with the double-buffered warp loop
     * (each warp then runs four chunks through its two buffers; at 16 it has two, and the buffers only cost registers):
     * 3.73-3.77 ms/token against 3.86-3.91 at 16, 3.92 at 24 and 4.00 at 48 (docs/PERFORMANCE.md, "Batch-1 decode on
     * the GPU").
     */
    static final int SPLIT_CHUNKS = Integer.getInteger("qalora.cuda.gemvSplitChunks", 32);
    /**
     * Whether {@link QuantKernelModule} routes the bf16 GEMVs here: on by default, {@code
     * -Dqalora.cuda.splitKGemv=false} goes back to the slice GEMV. Measured on an H100 (docs/PERFORMANCE.md, "Batch-1
     * decode on the GPU"): the 7B-shaped decode 3.93 ms/token against 4.10 with the slice GEMV in the same call.
     */
    static final boolean ENABLED = Boolean.parseBoolean(System.getProperty("qalora.cuda.splitKGemv", "true"));

    private final CudaDriver cuda;
    private final MemorySegment[] gemv = new MemorySegment[9];  // by bit width
    private final MemorySegment[] residual = new MemorySegment[9];
    private final MemorySegment[] swiglu = new MemorySegment[9];
    private final MemorySegment[] rope = new MemorySegment[9];          // q/k/v + RoPE + cache write
    private final MemorySegment[] residualNorm = new MemorySegment[9];  // residual + the next RMSNorm
    private final DependentLaunch dependent;  // null: plain launches
    private final DeviceBuffer partials;
    private final DeviceBuffer counters;    // per column tile, then one for the row (the RMSNorm epilogue's)

    SplitKGemv(CudaDriver cuda) {
        if (SPLIT_CHUNKS < 1) {
            throw new IllegalArgumentException("qalora.cuda.gemvSplitChunks must be at least 1, got " + SPLIT_CHUNKS);
        }
        this.cuda = cuda;
        dependent = DependentLaunch.forDevice(cuda);
        MemorySegment module = QuantKernelModule.loadModule(cuda, "splitk_gemv");
        for (int bits : new int[] {2, 3, 4, 8}) {
            gemv[bits] = cuda.function(module, "sk_gemv_bf16_b" + bits);
            residual[bits] = cuda.function(module, "sk_gemv_residual_bf16_b" + bits);
            swiglu[bits] = cuda.function(module, "sk_gemv_swiglu_bf16_b" + bits);
            rope[bits] = cuda.function(module, "sk_gemv_rope_bf16_b" + bits);
            residualNorm[bits] = cuda.function(module, "sk_gemv_residual_norm_bf16_b" + bits);
        }
        partials = DeviceBuffer.allocate(cuda, PARTIAL_FLOATS * Float.BYTES);
        counters = DeviceBuffer.allocate(cuda, (COUNTERS + 1L) * Integer.BYTES);
        cuda.zeroBytes(counters.pointer(), counters.bytes());  // the kernels leave them 0 after every launch
        cuda.synchronize();
    }

    /**
     * Whether the split-K kernels take {@code w} with input {@code x}: inputs in whole chunks of 32 inside one group
     * (group size a multiple of 32), outputs in fours, and 16-byte aligned codes, scales, zeros and input.
     */
    static boolean takes(DeviceWeight w, long x) {
        return w.in() % 32 == 0 && w.groupSize() % 32 == 0 && w.out() % 4 == 0
                && aligned(w.q()) && aligned(w.scales()) && aligned(w.zeros()) && aligned(x);
    }

    private static boolean aligned(long pointer) {
        return (pointer & 15) == 0;
    }

    /** Chunks of 32 inputs per split for an input of {@code in} features: the same for every launch of that width. */
    static int splitChunks(int in) {
        int chunks = in / 32;
        return Math.max(SPLIT_CHUNKS, (chunks + MAX_SPLITS - 1) / MAX_SPLITS);
    }

    /** {@code y[k] = W[k] . x}, one to three weights that {@link #takes} with one input width, bits and group size. */
    void gemv(DeviceWeight[] w, long x, long[] y) {
        Object[] args = gemv3Arguments(w, x, y, 0);
        launch(gemv[w[0].bits()], "sk_gemv_bf16_b" + w[0].bits(), tilesOf(w), splits(w[0], (int) args[18],
                tilesOf(w), 1), args);
    }

    /**
     * {@link #gemv} of a decode row's q, k and v, then what {@code rope_cache_write} does to them (q and k rotated in
     * place, k and v copied into cache row {@code info[0] * capacity + info[1]}): as {@link
     * QuantKernelModule#gemvRopeCacheBf16} documents.
     */
    void gemvRope(DeviceWeight[] qkv, long x, long[] y, long cos, long sin, long kCache, long vCache,
                  boolean cacheBf16, long info, int capacity, int headDim) {
        Object[] args = gemv3Arguments(qkv, x, y, 8);
        args[21] = cos;
        args[22] = sin;
        args[23] = kCache;
        args[24] = vCache;
        args[25] = cacheBf16 ? 1 : 0;
        args[26] = info;
        args[27] = capacity;
        args[28] = headDim;
        launch(rope[qkv[0].bits()], "sk_gemv_rope_bf16_b" + qkv[0].bits(), tilesOf(qkv), splits(qkv[0],
                (int) args[18], tilesOf(qkv), 1), args);
    }

    /** The 21 arguments of a three-weight launch (absent weights zero), with {@code extra} free slots after them. */
    private Object[] gemv3Arguments(DeviceWeight[] w, long x, long[] y, int extra) {
        Object[] args = new Object[21 + extra];
        for (int k = 0; k < 3; k++) {
            DeviceWeight wk = k < w.length ? w[k] : null;
            args[5 * k] = wk == null ? 0L : wk.q();
            args[5 * k + 1] = wk == null ? 0L : wk.scales();
            args[5 * k + 2] = wk == null ? 0L : wk.zeros();
            args[5 * k + 3] = wk == null ? 0 : wk.out();
            args[5 * k + 4] = wk == null ? 0L : y[k];
        }
        args[15] = w[0].in();
        args[16] = w[0].groupSize();
        args[17] = x;
        args[18] = splitChunks(w[0].in());
        args[19] = partials.pointer();
        args[20] = counters.pointer();
        return args;
    }

    private static int tilesOf(DeviceWeight[] w) {
        int tiles = 0;
        for (DeviceWeight wk : w) {
            tiles += tiles(wk.out());
        }
        return tiles;
    }

    /** {@code out = residual + W . x}, as {@link QuantKernelModule#gemvResidualBf16} documents. */
    void gemvResidual(DeviceWeight w, long x, boolean productBf16, long residualIn, boolean residualBf16, long out,
                      boolean outBf16) {
        int kb = splitChunks(w.in()), tiles = tiles(w.out());
        launch(residual[w.bits()], "sk_gemv_residual_bf16_b" + w.bits(), tiles, splits(w, kb, tiles, 1), w.q(),
                w.scales(), w.zeros(), w.out(), w.in(), w.groupSize(), x, productBf16 ? 1 : 0, residualIn,
                residualBf16 ? 1 : 0, out, outBf16 ? 1 : 0, kb, partials.pointer(), counters.pointer());
    }

    /**
     * {@link #gemvResidual}, then {@code normed = rmsnorm(out)} with fp32 weight {@code norm} and {@code rstd[0]}, as
     * {@link QuantKernelModule#gemvResidualNormBf16} documents.
     */
    void gemvResidualNorm(DeviceWeight w, long x, boolean productBf16, long residualIn, boolean residualBf16,
                          long out, boolean outBf16, long norm, float eps, long normed, boolean normedBf16,
                          long rstd) {
        int kb = splitChunks(w.in()), tiles = tiles(w.out());
        launch(residualNorm[w.bits()], "sk_gemv_residual_norm_bf16_b" + w.bits(), tiles,
                splits(w, kb, tiles, 1), w.q(), w.scales(), w.zeros(), w.out(), w.in(),
                w.groupSize(), x, productBf16 ? 1 : 0, residualIn, residualBf16 ? 1 : 0, out, outBf16 ? 1 : 0, kb,
                partials.pointer(), counters.pointer(), norm, eps, normed, normedBf16 ? 1 : 0, rstd,
                counters.pointer() + (long) COUNTERS * Integer.BYTES);
    }

    /** {@code out = silu(Wg . x) * (Wu . x)}, as {@link QuantKernelModule#gemvSwigluBf16} documents. */
    void gemvSwiglu(DeviceWeight gate, DeviceWeight up, long x, long out) {
        int kb = splitChunks(gate.in()), tiles = tiles(gate.out());
        launch(swiglu[gate.bits()], "sk_gemv_swiglu_bf16_b" + gate.bits(), tiles, splits(gate, kb, tiles, 2),
                gate.q(), gate.scales(), gate.zeros(), up.q(), up.scales(), up.zeros(), gate.out(), gate.in(),
                gate.groupSize(), x, out, kb, partials.pointer(), counters.pointer());
    }

    /** A launch of 256-thread blocks, programmatic ({@link DependentLaunch}) when that is on. */
    private void launch(MemorySegment function, String name, int tiles, int splits, Object... args) {
        if (dependent != null) {
            dependent.launch(function, name, tiles, splits, THREADS, args);
        } else {
            cuda.launch(function, name, tiles, splits, 1, THREADS, 1, 1, 0, args);
        }
    }

    private static int tiles(int out) {
        return (out + COLUMNS_PER_TILE - 1) / COLUMNS_PER_TILE;
    }

    /** The number of splits, after checking that the launch's partial sums and counters fit the workspace. */
    private static int splits(DeviceWeight w, int kb, int tiles, int sumsPerColumn) {
        int splits = (w.in() / 32 + kb - 1) / kb;
        long floats = (long) splits * sumsPerColumn * tiles * COLUMNS_PER_TILE;
        if (splits > 1 && (floats > PARTIAL_FLOATS || tiles > COUNTERS)) {
            throw new IllegalArgumentException("the split-K GEMV workspace holds " + PARTIAL_FLOATS + " partial sums"
                    + " and " + COUNTERS + " column tiles; a product of " + w.in() + " inputs and " + tiles + " tiles"
                    + " needs " + floats + " and " + tiles + " (raise -Dqalora.cuda.gemvSplitChunks for fewer splits)");
        }
        return splits;
    }
}
