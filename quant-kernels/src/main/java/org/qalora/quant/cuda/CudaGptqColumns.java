package org.qalora.quant.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import org.qalora.quant.quantizer.CpuGptqColumns;
import org.qalora.quant.quantizer.GptqColumns;
import org.qalora.quant.quantizer.GptqQuantizer;

/**
 * GPTQ's column stage on the GPU ({@code src/main/cuda/gptq_columns.cu}), giving the bits of {@link CpuGptqColumns}
 * on the Vector API kernels: the same codes, scales and zeros for the same problem.
 *
 * <p>W {@code [out, in]} and U {@code [in, in]} are uploaded once (fp32, row-major as on the host); then per block of
 * {@link GptqQuantizer#BLOCK_SIZE} columns two launches in stream order: {@code gptq_columns_block} (a warp per row
 * runs the block's columns in order: group parameters at group starts, code, error, in-block update; the rows are
 * independent of each other) and {@code gptq_lazy_update} (the columns right of the block, a tiled fp32 product in
 * which one thread sums each element in the CPU product's order). The codes (one byte each) and, unless the groups
 * are static, the scales and zeros come back at the end. The kernel file says why each step gives the CPU's bits.
 *
 * <p>Device memory: {@code 4 in^2 + 5 out in + 512 out} bytes and the group parameters, 0.71 GB for a LLaMA-7B
 * down_proj ({@code [4096, 11008]}); a device without room fails with a message that says how much was needed.
 * One column stage at a time per device (the buffers are large; the launches would serialise anyway).
 */
public final class CudaGptqColumns implements GptqColumns {
    private static final int BLOCK = GptqQuantizer.BLOCK_SIZE;  // GC_BLOCK in the .cu
    private static final int ROWS_PER_LAUNCH_BLOCK = 8;          // GC_ROWS
    private static final int TILE = 128;                         // LU_BM = LU_BN
    private static final int TILE_THREADS = 256;                 // LU_THREADS

    private static final ConcurrentHashMap<Integer, LazyNative<Kernels>> MODULES = new ConcurrentHashMap<>();

    /** The two kernels of {@code gptq_columns.cu} on one device. */
    private record Kernels(CudaDriver cuda, MemorySegment block, MemorySegment lazyUpdate) {
        static Kernels load(CudaDriver cuda) {
            MemorySegment module = QuantKernelModule.loadModule(cuda, "gptq_columns");
            return new Kernels(cuda, cuda.function(module, "gptq_columns_block"),
                    cuda.function(module, "gptq_lazy_update"));
        }
    }

    private final int ordinal;
    private final boolean returnWeights;

    /** On GPU {@code ordinal}; nothing is loaded until the first call. */
    public CudaGptqColumns(int ordinal) {
        this(ordinal, false);
    }

    private CudaGptqColumns(int ordinal, boolean returnWeights) {
        if (ordinal < 0) {
            throw new IllegalArgumentException("CUDA device ordinals are 0, 1, ...; got " + ordinal);
        }
        this.ordinal = ordinal;
        this.returnWeights = returnWeights;
    }

    /**
     * A column stage that also copies the final global W back into {@code p.w()}, as {@link CpuGptqColumns} leaves it
     * (for tests: W after every lazy update carries each column's error bit for bit, where codes are too coarse to
     * show a one-ulp difference; one more copy of {@code 4 out in} bytes, which quantizing does not need).
     */
    public static CudaGptqColumns returningWeights(int ordinal) {
        return new CudaGptqColumns(ordinal, true);
    }

    /** Why GPU {@code ordinal} cannot run the column stage (no driver, no device, no PTX in the jar), or null. */
    public static String unusableReason(int ordinal) {
        return kernels(ordinal).unavailableReason();
    }

    private static LazyNative<Kernels> kernels(int ordinal) {
        return MODULES.computeIfAbsent(ordinal, o -> new LazyNative<>(() -> Kernels.load(CudaDriver.get(o))));
    }

    public int ordinal() { return ordinal; }

    @Override
    public int[] quantize(Problem p, String name) {
        Kernels k = kernels(ordinal).get();
        int out = p.out();
        int in = p.in();
        long groupFloats = (long) p.groups() * out;
        byte[] codes = new byte[out * in];
        synchronized (k) {
            CudaDriver cuda = k.cuda();
            try (DeviceBuffer w = allocate(cuda, 4L * out * in, p, name);
                 DeviceBuffer u = allocate(cuda, 4L * in * in, p, name);
                 DeviceBuffer groupOf = allocate(cuda, 4L * in, p, name);
                 DeviceBuffer scales = allocate(cuda, 4 * groupFloats, p, name);
                 DeviceBuffer zeros = allocate(cuda, 4 * groupFloats, p, name);
                 DeviceBuffer deviceCodes = allocate(cuda, (long) out * in, p, name);
                 DeviceBuffer negErr = allocate(cuda, 4L * BLOCK * out, p, name)) {
                cuda.copyToDevice(p.w(), 0, p.w().length, w.pointer());
                cuda.copyToDevice(p.u(), 0, p.u().length, u.pointer());
                cuda.copyToDevice(p.groupOf(), groupOf.pointer());
                if (p.staticGroups()) {
                    cuda.copyToDevice(p.scales(), 0, p.scales().length, scales.pointer());
                    cuda.copyToDevice(p.zeros(), 0, p.zeros().length, zeros.pointer());
                }
                for (int i1 = 0; i1 < in; i1 += BLOCK) {
                    int i2 = Math.min(i1 + BLOCK, in);
                    int count = i2 - i1;
                    cuda.launch(k.block(), "gptq_columns_block", ceil(out, ROWS_PER_LAUNCH_BLOCK), 1, 1,
                            ROWS_PER_LAUNCH_BLOCK * 32, 1, 1, 0, w.pointer(), u.pointer(), groupOf.pointer(),
                            scales.pointer(), zeros.pointer(), deviceCodes.pointer(), negErr.pointer(), out, in, i1,
                            count, p.groupSize(), p.maxq(), p.sym() ? 1 : 0, p.staticGroups() ? 1 : 0);
                    if (i2 < in) {
                        cuda.launch(k.lazyUpdate(), "gptq_lazy_update", ceil(in - i2, TILE), ceil(out, TILE), 1,
                                TILE_THREADS, 1, 1, 0, w.pointer(), u.pointer(), negErr.pointer(), out, in, i1, count,
                                i2);
                    }
                }
                cuda.copyToHost(deviceCodes.pointer(), MemorySegment.ofArray(codes));  // synchronous: waits for the launches
                if (!p.staticGroups()) {
                    cuda.copyToHost(scales.pointer(), p.scales(), 0, p.scales().length);
                    cuda.copyToHost(zeros.pointer(), p.zeros(), 0, p.zeros().length);
                }
                if (returnWeights) {
                    cuda.copyToHost(w.pointer(), p.w(), 0, p.w().length);
                }
            }
        }
        int[] result = new int[codes.length];
        for (int j = 0; j < codes.length; j++) {
            result[j] = codes[j] & 0xff;
        }
        return result;
    }

    /** A device buffer, or a message saying what the column stage of {@code name} needs when the device is full. */
    private static DeviceBuffer allocate(CudaDriver cuda, long bytes, Problem p, String name) {
        try {
            return DeviceBuffer.allocateCollecting(cuda, bytes);
        } catch (CudaException e) {
            if (e.status() != 2) {  // CUDA_ERROR_OUT_OF_MEMORY
                throw e;
            }
            long need = 4L * p.in() * p.in() + 5L * p.out() * p.in() + 4L * BLOCK * p.out() + 8L * p.groups() * p.out()
                    + 4L * p.in();
            long[] info = cuda.memoryInfo();
            throw new CudaException(String.format(Locale.ROOT, "%s: GPTQ's column stage of [%d, %d] needs %.1f MB on"
                            + " GPU %d (%s), which has %.1f MB free of %.1f MB: %s; free the device or use"
                            + " --gptq-solve cpu", name, p.out(), p.in(), need / 1e6, cuda.ordinal(),
                    cuda.deviceName(), info[0] / 1e6, info[1] / 1e6, e.getMessage()), e.status());
        }
    }

    private static int ceil(long a, int b) {
        return (int) ((a + b - 1) / b);
    }

    @Override
    public String toString() {
        return "gpu:" + ordinal;
    }
}
