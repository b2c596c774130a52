package org.qalora.quant.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The CUDA driver API ({@code libcuda.so.1}, looked up by soname at run time) through the Foreign Function &amp;
 * Memory API: no JNI and no binding compiled against one CUDA version; the driver's stable C ABI is all it uses.
 *
 * <p>One process-wide instance per device ordinal, on that device's primary context ({@link #get(int)}; {@link #get()}
 * is device 0). Every call first makes that context current on the calling thread, so any thread may call, and one
 * thread may use several devices. Failures become {@link CudaException}s naming
 * the call and the CUresult ({@code cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory}).
 *
 * <p>{@link #available()} never throws: on a machine without the library or without a device it returns false
 * and {@link #unavailableReason()} says why, so CPU-only machines fall back cleanly.
 */
public final class CudaDriver {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    private static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    private static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    private static final int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    private static final java.util.concurrent.ConcurrentHashMap<Integer, LazyNative<CudaDriver>> INSTANCES =
            new java.util.concurrent.ConcurrentHashMap<>();
    /** The context this thread last made current (contexts of several devices may alternate on one thread). */
    private static final ThreadLocal<MemorySegment> CURRENT = new ThreadLocal<>();

    private final SymbolLookup lib;
    private final MethodHandle cuGetErrorName;
    private final MethodHandle cuGetErrorString;
    private final MethodHandle cuCtxSetCurrent;
    private final MethodHandle cuCtxSynchronize;
    private final MethodHandle cuMemAlloc;
    private final MethodHandle cuMemFree;
    private final MethodHandle cuMemcpyHtoD;
    private final MethodHandle cuMemcpyDtoH;
    private final MethodHandle cuMemsetD32;
    private final MethodHandle cuMemsetD8Async;
    private final MethodHandle cuMemcpyDtoDAsync;
    private final MethodHandle cuMemGetInfo;
    private final MethodHandle cuModuleLoadData;
    private final MethodHandle cuModuleGetFunction;
    private final MethodHandle cuLaunchKernel;
    private final MethodHandle cuFuncSetAttribute;
    private final MethodHandle cuEventCreate;
    private final MethodHandle cuEventRecord;
    private final MethodHandle cuEventSynchronize;
    private final MethodHandle cuEventElapsedTime;
    private final MethodHandle cuEventDestroy;
    private final MemorySegment context;
    private final String deviceName;
    private final int computeMajor;
    private final int computeMinor;
    private final int multiprocessors;
    private final int ordinal;
    private final java.util.concurrent.atomic.AtomicLong allocated = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong peakAllocated = new java.util.concurrent.atomic.AtomicLong();
    /**
     * Where this thread's launches, memsets and device copies go: NULL (the legacy default stream) except while a
     * {@link CudaGraphs} capture runs on the thread. Per thread, so that a capture never records another thread's
     * work. Synchronous copies to and from the host always use the default stream, which waits for the capture
     * stream (a blocking stream), so they stay ordered after replayed graphs.
     */
    private final ThreadLocal<MemorySegment> streams = ThreadLocal.withInitial(() -> MemorySegment.NULL);

    private CudaDriver(SymbolLookup lib, int ordinal) {
        this.ordinal = ordinal;
        this.lib = lib;
        cuGetErrorName = handle("cuGetErrorName", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        cuGetErrorString = handle("cuGetErrorString", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        MethodHandle cuInit = handle("cuInit", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        MethodHandle cuDeviceGetCount = handle("cuDeviceGetCount", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle cuDeviceGet = handle("cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        MethodHandle cuDeviceGetName = handle("cuDeviceGetName",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        MethodHandle cuDeviceGetAttribute = handle("cuDeviceGetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        MethodHandle cuDevicePrimaryCtxRetain = handle("cuDevicePrimaryCtxRetain",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuCtxSetCurrent = handle("cuCtxSetCurrent", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuCtxSynchronize = handle("cuCtxSynchronize", FunctionDescriptor.of(JAVA_INT));
        cuMemAlloc = handle("cuMemAlloc_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        cuMemFree = handle("cuMemFree_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
        // The copies take host memory straight from Java arrays: "critical" downcalls may see heap segments
        // (the GC is held off for the call), which saves a staging copy of every activation.
        Linker.Option heap = Linker.Option.critical(true);
        cuMemcpyHtoD = handle("cuMemcpyHtoD_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG), heap);
        cuMemcpyDtoH = handle("cuMemcpyDtoH_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), heap);
        cuMemcpyDtoDAsync = handle("cuMemcpyDtoDAsync_v2",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS));
        cuMemsetD32 = handle("cuMemsetD32_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
        cuMemsetD8Async = handle("cuMemsetD8Async",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_BYTE, JAVA_LONG, ADDRESS));
        cuMemGetInfo = handle("cuMemGetInfo_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuModuleLoadData = handle("cuModuleLoadData", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuModuleGetFunction = handle("cuModuleGetFunction",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        cuLaunchKernel = handle("cuLaunchKernel", FunctionDescriptor.of(JAVA_INT, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        cuFuncSetAttribute = handle("cuFuncSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        cuEventCreate = handle("cuEventCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuEventRecord = handle("cuEventRecord", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuEventSynchronize = handle("cuEventSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuEventElapsedTime = handle("cuEventElapsedTime", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        cuEventDestroy = handle("cuEventDestroy_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));

        try (Arena arena = Arena.ofConfined()) {
            check("cuInit", (int) cuInit.invokeExact(0));
            MemorySegment count = arena.allocate(JAVA_INT);
            check("cuDeviceGetCount", (int) cuDeviceGetCount.invokeExact(count));
            int devices = count.get(JAVA_INT, 0);
            if (devices == 0) {
                throw new CudaException("cuDeviceGetCount: no CUDA device visible (CUDA_VISIBLE_DEVICES?)");
            }
            if (ordinal >= devices) {
                throw new CudaException("no CUDA device with ordinal " + ordinal + ": this process sees " + devices
                        + " (ordinals 0.." + (devices - 1) + "; CUDA_VISIBLE_DEVICES="
                        + System.getenv().getOrDefault("CUDA_VISIBLE_DEVICES", "unset") + ")");
            }
            MemorySegment dev = arena.allocate(JAVA_INT);
            check("cuDeviceGet", (int) cuDeviceGet.invokeExact(dev, ordinal));
            int device = dev.get(JAVA_INT, 0);
            MemorySegment name = arena.allocate(256);
            check("cuDeviceGetName", (int) cuDeviceGetName.invokeExact(name, 256, device));
            deviceName = name.getString(0, StandardCharsets.UTF_8);
            MemorySegment attr = arena.allocate(JAVA_INT);
            check("cuDeviceGetAttribute", (int) cuDeviceGetAttribute.invokeExact(attr,
                    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device));
            computeMajor = attr.get(JAVA_INT, 0);
            check("cuDeviceGetAttribute", (int) cuDeviceGetAttribute.invokeExact(attr,
                    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device));
            computeMinor = attr.get(JAVA_INT, 0);
            check("cuDeviceGetAttribute", (int) cuDeviceGetAttribute.invokeExact(attr,
                    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device));
            multiprocessors = attr.get(JAVA_INT, 0);
            // The primary context is the one the CUDA runtime (and so cuBLAS) uses too: both share allocations.
            MemorySegment ctx = arena.allocate(ADDRESS);
            check("cuDevicePrimaryCtxRetain", (int) cuDevicePrimaryCtxRetain.invokeExact(ctx, device));
            context = ctx.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException("CUDA initialisation failed: " + t);
        }
    }

    /** A driver API entry point ({@link CudaGraphs} looks its own up here). */
    MethodHandle handle(String name, FunctionDescriptor fd, Linker.Option... options) {
        MemorySegment symbol = lib.find(name).orElseThrow(() -> new CudaException(
                "libcuda.so.1 has no symbol " + name + ": the NVIDIA driver is too old (need CUDA 12+ driver API)"));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    /** True when libcuda.so.1 loads and device 0 initialises; never throws. */
    public static boolean available() {
        return available(0);
    }

    /** True when libcuda.so.1 loads and device {@code ordinal} initialises; never throws. */
    public static boolean available(int ordinal) {
        return instance(ordinal).available();
    }

    /** Why {@link #available()} is false, or null when it is true. */
    public static String unavailableReason() {
        return unavailableReason(0);
    }

    /** Why {@link #available(int)} is false, or null when it is true. */
    public static String unavailableReason(int ordinal) {
        return instance(ordinal).unavailableReason();
    }

    /** The driver on device 0, initialised on first use. Throws (with the reason) when CUDA is unavailable. */
    public static CudaDriver get() {
        return get(0);
    }

    /** The driver on device {@code ordinal}, initialised on first use; throws (with the reason) when unusable. */
    public static CudaDriver get(int ordinal) {
        return instance(ordinal).get();
    }

    private static LazyNative<CudaDriver> instance(int ordinal) {
        if (ordinal < 0) {
            throw new IllegalArgumentException("CUDA device ordinals are 0, 1, ...; got " + ordinal);
        }
        return INSTANCES.computeIfAbsent(ordinal, o -> new LazyNative<>(() -> open(o)));
    }

    private static CudaDriver open(int ordinal) {
        SymbolLookup lib;
        try {
            lib = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
        } catch (IllegalArgumentException e) {
            throw new CudaException("libcuda.so.1 not found (no NVIDIA driver on this machine): " + e.getMessage());
        } catch (IllegalCallerException e) {
            throw new CudaException("native access is disabled: run java with --enable-native-access=ALL-UNNAMED");
        }
        return new CudaDriver(lib, ordinal);
    }

    public String deviceName() { return deviceName; }
    public int computeMajor() { return computeMajor; }
    public int computeMinor() { return computeMinor; }
    public int multiprocessors() { return multiprocessors; }
    public int ordinal() { return ordinal; }

    /** Device bytes this process holds through {@link #malloc} now. */
    public long allocatedBytes() { return allocated.get(); }

    /** The most device bytes held through {@link #malloc} at once since start or {@link #resetPeak()}. */
    public long peakAllocatedBytes() { return peakAllocated.get(); }

    public void resetPeak() { peakAllocated.set(allocated.get()); }

    /** {@code cuMemGetInfo_v2}: {free, total} bytes of the device (all processes' allocations counted). */
    public long[] memoryInfo() {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG), total = arena.allocate(JAVA_LONG);
            check("cuMemGetInfo_v2", (int) cuMemGetInfo.invokeExact(free, total));
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Makes this device's primary context current on this thread (when another one, or none, is). */
    void ensureCurrent() {
        if (CURRENT.get() != context) {
            try {
                check("cuCtxSetCurrent", (int) cuCtxSetCurrent.invokeExact(context));
            } catch (CudaException e) {
                throw e;
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
            CURRENT.set(context);
        }
    }

    /** Throws a CudaException naming {@code call} unless {@code result} is CUDA_SUCCESS. */
    void check(String call, int result) {
        if (result != 0) {
            throw new CudaException(call + " failed: " + errorName(result) + " (" + result + "): "
                    + errorString(result), result);
        }
    }

    /** The CUresult's enum name, e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}. */
    public String errorName(int result) {
        return lookupString(cuGetErrorName, result, "CUresult " + result);
    }

    String errorString(int result) {
        return lookupString(cuGetErrorString, result, "unknown error");
    }

    private static String lookupString(MethodHandle h, int result, String fallback) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int r = (int) h.invokeExact(result, out);
            MemorySegment p = out.get(ADDRESS, 0);
            if (r != 0 || p.equals(MemorySegment.NULL)) {
                return fallback;
            }
            return p.reinterpret(1024).getString(0, StandardCharsets.UTF_8);
        } catch (Throwable t) {
            return fallback;
        }
    }

    // ---- memory -------------------------------------------------------------------------------------------------

    /** {@code cuMemAlloc_v2}: a device pointer to {@code bytes} bytes (uninitialised). */
    public long malloc(long bytes) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(JAVA_LONG);
            int r = (int) cuMemAlloc.invokeExact(p, Math.max(bytes, 4L));
            if (r != 0) {
                throw new CudaException("cuMemAlloc_v2 of " + bytes + " bytes failed: " + errorName(r) + " (" + r + ")"
                        + ": " + errorString(r), r);
            }
            long held = allocated.addAndGet(Math.max(bytes, 4L));
            peakAllocated.accumulateAndGet(held, Math::max);
            return p.get(JAVA_LONG, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Frees a pointer from {@link #malloc} of {@code bytes} bytes (kept in the allocation count). */
    public void free(long pointer, long bytes) {
        ensureCurrent();
        allocated.addAndGet(-Math.max(bytes, 4L));
        try {
            check("cuMemFree_v2", (int) cuMemFree.invokeExact(pointer));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Copies {@code count} floats from {@code src[off..]} to the device. */
    public void copyToDevice(float[] src, int off, int count, long dst) {
        copyToDevice(MemorySegment.ofArray(src).asSlice((long) off * 4, (long) count * 4), dst);
    }

    public void copyToDevice(int[] src, long dst) {
        copyToDevice(MemorySegment.ofArray(src), dst);
    }

    /** Copies a host segment (heap or native) to the device. */
    public void copyToDevice(MemorySegment src, long dst) {
        ensureCurrent();
        try {
            check("cuMemcpyHtoD_v2", (int) cuMemcpyHtoD.invokeExact(dst, src, src.byteSize()));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Copies {@code count} floats from the device into {@code dst[off..]}. */
    public void copyToHost(long src, float[] dst, int off, int count) {
        copyToHost(src, MemorySegment.ofArray(dst).asSlice((long) off * 4, (long) count * 4));
    }

    public void copyToHost(long src, MemorySegment dst) {
        ensureCurrent();
        try {
            check("cuMemcpyDtoH_v2", (int) cuMemcpyDtoH.invokeExact(dst, src, dst.byteSize()));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public void copyDeviceToDevice(long src, long dst, long bytes) {
        ensureCurrent();
        try {
            check("cuMemcpyDtoDAsync_v2", (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, streams.get()));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Fills {@code count} 32-bit words at {@code dst} with {@code value}'s bits. */
    public void fill(long dst, float value, long count) {
        ensureCurrent();
        try {
            check("cuMemsetD32_v2", (int) cuMemsetD32.invokeExact(dst, Float.floatToRawIntBits(value), count));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Zeroes {@code bytes} bytes at {@code dst} (any element type; asynchronous, on the launch stream). */
    public void zeroBytes(long dst, long bytes) {
        ensureCurrent();
        try {
            check("cuMemsetD8Async", (int) cuMemsetD8Async.invokeExact(dst, (byte) 0, bytes, streams.get()));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The stream this thread's launches go to ({@link #streams}); package-private: only a capture changes it. */
    MemorySegment launchStream() { return streams.get(); }

    void launchStream(MemorySegment s) { streams.set(s); }

    public void synchronize() {
        ensureCurrent();
        try {
            check("cuCtxSynchronize", (int) cuCtxSynchronize.invokeExact());
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    // ---- modules and launches -----------------------------------------------------------------------------------

    /** Loads a PTX (or cubin) image; the driver JIT-compiles PTX for this device. Returns the CUmodule. */
    public MemorySegment loadModule(byte[] image, String what) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(image.length + 1L);  // PTX must be NUL-terminated
            MemorySegment.copy(image, 0, data, ValueLayout.JAVA_BYTE, 0, image.length);
            MemorySegment out = arena.allocate(ADDRESS);
            int r = (int) cuModuleLoadData.invokeExact(out, data);
            if (r != 0) {
                throw new CudaException("cuModuleLoadData(" + what + ") failed: " + errorName(r) + " (" + r + "): "
                        + errorString(r) + " -- a PTX newer than the driver needs a newer driver (nvcc 13 PTX needs"
                        + " R580+)", r);
            }
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** {@code cuModuleGetFunction}: the kernel {@code name} (an extern "C" name) of {@code module}. */
    public MemorySegment function(MemorySegment module, String name) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int r = (int) cuModuleGetFunction.invokeExact(out, module, arena.allocateFrom(name));
            if (r != 0) {
                throw new CudaException("cuModuleGetFunction(" + name + ") failed: " + errorName(r) + " (" + r
                        + "): the PTX does not define this kernel; rebuild quant-kernels with nvcc", r);
            }
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Lets {@code function} be launched with up to {@code bytes} of dynamic shared memory: above 48 KiB a kernel
     * must opt in ({@code CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES}), or its launch fails.
     */
    public void allowDynamicSharedMemory(MemorySegment function, String name, int bytes) {
        ensureCurrent();
        try {
            int r = (int) cuFuncSetAttribute.invokeExact(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
            if (r != 0) {
                throw new CudaException("cuFuncSetAttribute(" + name + ", max dynamic shared memory " + bytes
                        + " bytes) failed: " + errorName(r) + " (" + r + "): " + errorString(r), r);
            }
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * {@code cuLaunchKernel} on the launch stream (the default stream, except while {@link CudaGraphs} captures).
     * Each argument is a {@link Long} (device pointer or 64-bit
     * integer), {@link Integer} or {@link Float}; the driver wants an array of pointers to host copies of them.
     */
    public void launch(MemorySegment function, String name, int gridX, int gridY, int gridZ,
                       int blockX, int blockY, int blockZ, int sharedBytes, Object... args) {
        if (KernelProfile.ENABLED) {
            KernelProfile.run(this, name, () -> launchOnce(function, name, gridX, gridY, gridZ, blockX, blockY, blockZ,
                    sharedBytes, args));
        } else {
            launchOnce(function, name, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, args);
        }
    }

    private void launchOnce(MemorySegment function, String name, int gridX, int gridY, int gridZ,
                            int blockX, int blockY, int blockZ, int sharedBytes, Object... args) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            int r = (int) cuLaunchKernel.invokeExact(function, gridX, gridY, gridZ, blockX, blockY, blockZ,
                    sharedBytes, streams.get(), kernelParams(arena, name, args), MemorySegment.NULL);
            if (r != 0) {
                throw new CudaException("cuLaunchKernel(" + name + ", grid " + gridX + "x" + gridY + "x" + gridZ
                        + ", block " + blockX + "x" + blockY + "x" + blockZ + ") failed: " + errorName(r) + " (" + r
                        + "): " + errorString(r), r);
            }
        } catch (CudaException | IllegalArgumentException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The driver's {@code kernelParams}: an array of pointers to host copies of the arguments. */
    static MemorySegment kernelParams(Arena arena, String name, Object[] args) {
        MemorySegment pointers = arena.allocate(MemoryLayout.sequenceLayout(args.length, ADDRESS));
        for (int a = 0; a < args.length; a++) {
            MemorySegment value = switch (args[a]) {
                case Long l -> arena.allocateFrom(JAVA_LONG, l);
                case Integer i -> arena.allocateFrom(JAVA_INT, i);
                case Float f -> arena.allocateFrom(JAVA_FLOAT, f);
                case Double d -> arena.allocateFrom(ValueLayout.JAVA_DOUBLE, d);
                default -> throw new IllegalArgumentException("kernel " + name + " argument " + a + " is a "
                        + args[a].getClass().getSimpleName() + "; pass Long, Integer, Float or Double");
            };
            pointers.setAtIndex(ADDRESS, a, value);
        }
        return pointers;
    }

    // ---- timing ------------------------------------------------------------------------------------------------

    /** {@code cuEventCreate} + {@code cuEventRecord} on the default stream: a timestamp in stream order. */
    public MemorySegment recordEvent() {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ADDRESS);
            check("cuEventCreate", (int) cuEventCreate.invokeExact(p, 0));
            MemorySegment e = p.get(ADDRESS, 0);
            check("cuEventRecord", (int) cuEventRecord.invokeExact(e, MemorySegment.NULL));
            return e;
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Milliseconds between two recorded events (waits for the later one), then destroys {@code start}. */
    public float elapsedAndDestroy(MemorySegment start, MemorySegment stop) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(stop));
            MemorySegment ms = arena.allocate(JAVA_FLOAT);
            check("cuEventElapsedTime", (int) cuEventElapsedTime.invokeExact(ms, start, stop));
            check("cuEventDestroy_v2", (int) cuEventDestroy.invokeExact(start));
            return ms.get(JAVA_FLOAT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Milliseconds of device time that {@code work} enqueues on the default stream, measured with a pair of CUDA
     * events (so host-side launch cost does not count unless it starves the GPU).
     */
    public double timeMillis(Runnable work) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = arena.allocate(ADDRESS);
            check("cuEventCreate", (int) cuEventCreate.invokeExact(p, 0));
            MemorySegment start = p.get(ADDRESS, 0);
            check("cuEventCreate", (int) cuEventCreate.invokeExact(p, 0));
            MemorySegment stop = p.get(ADDRESS, 0);
            try {
                check("cuEventRecord", (int) cuEventRecord.invokeExact(start, MemorySegment.NULL));
                work.run();
                check("cuEventRecord", (int) cuEventRecord.invokeExact(stop, MemorySegment.NULL));
                check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(stop));
                MemorySegment ms = arena.allocate(JAVA_FLOAT);
                check("cuEventElapsedTime", (int) cuEventElapsedTime.invokeExact(ms, start, stop));
                return ms.get(JAVA_FLOAT, 0);
            } finally {
                check("cuEventDestroy_v2", (int) cuEventDestroy.invokeExact(start));
                check("cuEventDestroy_v2", (int) cuEventDestroy.invokeExact(stop));
            }
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    @Override
    public String toString() {
        return "CudaDriver[" + deviceName + ", sm_" + computeMajor + computeMinor + ", " + multiprocessors + " SMs]";
    }
}
