package org.qalora.quant.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.util.List;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuSOLVER's dense float64 Cholesky routines through FFM, looked up by soname at run time: {@code libcusolver.so.12}
 * (CUDA 13), {@code .11} (CUDA 12), else the unversioned {@code libcusolver.so}. Only what GPTQ's inverse-Hessian
 * factor needs ({@link CudaGptqSolve}): {@code cusolverDnDpotrf} (Cholesky) and {@code cusolverDnDpotri} (inverse
 * from the Cholesky factor), with their workspace queries. It runs on the primary context that {@link CudaDriver}
 * made current (the CUDA runtime inside cuSOLVER uses the same one), so device pointers are shared.
 *
 * <p>cuSOLVER is column-major. Every call here works on the <em>lower</em> triangle of a column-major
 * {@code [n, n]} matrix with {@code lda = n}, which is the upper triangle of the same memory read row-major; for a
 * symmetric input the two are the same matrix. One handle per device, its calls serialised (the methods are
 * synchronized, as {@link Cublas}'s are).
 */
public final class Cusolver {
    private static final int CUBLAS_FILL_MODE_LOWER = 0;
    private static final String[] SONAMES = {"libcusolver.so.12", "libcusolver.so.11", "libcusolver.so"};
    /** cusolverStatus_t names, by value (cuSOLVER has no status-to-string call). */
    private static final String[] STATUS_NAMES = {"CUSOLVER_STATUS_SUCCESS", "CUSOLVER_STATUS_NOT_INITIALIZED",
        "CUSOLVER_STATUS_ALLOC_FAILED", "CUSOLVER_STATUS_INVALID_VALUE", "CUSOLVER_STATUS_ARCH_MISMATCH",
        "CUSOLVER_STATUS_MAPPING_ERROR", "CUSOLVER_STATUS_EXECUTION_FAILED", "CUSOLVER_STATUS_INTERNAL_ERROR",
        "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED", "CUSOLVER_STATUS_NOT_SUPPORTED"};

    private static final java.util.concurrent.ConcurrentHashMap<Integer, LazyNative<Cusolver>> INSTANCES =
            new java.util.concurrent.ConcurrentHashMap<>();

    private final String soname;
    private final CudaDriver cuda;
    private final MethodHandle setStream;
    private final MethodHandle potrfBufferSize;
    private final MethodHandle potrf;
    private final MethodHandle potriBufferSize;
    private final MethodHandle potri;
    /** The stream the handle is bound to: the calling thread's launch stream, as {@link Cublas} does. */
    private MemorySegment boundStream = MemorySegment.NULL;
    private final MemorySegment handle;

    private Cusolver(CudaDriver cuda, SymbolLookup lib, String soname) {
        this.soname = soname;
        this.cuda = cuda;
        Linker linker = Linker.nativeLinker();
        MethodHandle create = linker.downcallHandle(find(lib, "cusolverDnCreate"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle destroy = linker.downcallHandle(find(lib, "cusolverDnDestroy"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        setStream = linker.downcallHandle(find(lib, "cusolverDnSetStream"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        // (handle, uplo, n, double* A, lda, int* lwork)
        FunctionDescriptor bufferSize = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG,
                JAVA_INT, ADDRESS);
        // (handle, uplo, n, double* A, lda, double* work, lwork, int* devInfo): device pointers as longs
        FunctionDescriptor factor = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT,
                JAVA_LONG, JAVA_INT, JAVA_LONG);
        potrfBufferSize = linker.downcallHandle(find(lib, "cusolverDnDpotrf_bufferSize"), bufferSize);
        potrf = linker.downcallHandle(find(lib, "cusolverDnDpotrf"), factor);
        potriBufferSize = linker.downcallHandle(find(lib, "cusolverDnDpotri_bufferSize"), bufferSize);
        potri = linker.downcallHandle(find(lib, "cusolverDnDpotri"), factor);
        cuda.synchronize();  // makes the primary context current on this thread before cuSOLVER looks for one
        MemorySegment h = Arena.global().allocate(ADDRESS);
        try {
            check("cusolverDnCreate", (int) create.invokeExact(h));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        handle = h.get(ADDRESS, 0);
        try {
            bindStream();
        } catch (Throwable t) {
            // A handle that cannot take our stream is of no use: give it back rather than leak it.
            try {
                int ignored = (int) destroy.invokeExact(handle);
            } catch (Throwable suppressed) {
                t.addSuppressed(suppressed);
            }
            throw t instanceof CudaException e ? e : new CudaException("cusolverDnSetStream: " + t);
        }
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return CudaLibraryLoader.symbol(lib, "cuSOLVER", name);
    }

    /** True when a cuSOLVER library loads and a handle is created on device 0; never throws. */
    public static boolean available() {
        return available(0);
    }

    /** True when a cuSOLVER library loads and a handle is created on device {@code ordinal}; never throws. */
    public static boolean available(int ordinal) {
        return instance(ordinal).available();
    }

    public static String unavailableReason() {
        return unavailableReason(0);
    }

    /** Why {@link #available(int)} is false (no driver, no device, no cuSOLVER library), or null. */
    public static String unavailableReason(int ordinal) {
        if (!CudaDriver.available(ordinal)) {
            return CudaDriver.unavailableReason(ordinal);
        }
        return instance(ordinal).unavailableReason();
    }

    /** The handle on device 0. */
    public static Cusolver get() {
        return get(0);
    }

    /** The handle on device {@code ordinal} (one per device: a handle belongs to the context it was made in). */
    public static Cusolver get(int ordinal) {
        return instance(ordinal).get();
    }

    private static LazyNative<Cusolver> instance(int ordinal) {
        return INSTANCES.computeIfAbsent(ordinal, o -> new LazyNative<>(() -> open(CudaDriver.get(o))));
    }

    private static Cusolver open(CudaDriver cuda) {
        return CudaLibraryLoader.openFirst("cuSOLVER", List.of(SONAMES),
                (lib, soname) -> new Cusolver(cuda, lib, soname), "install the CUDA toolkit's libcusolver (with the"
                        + " libcublas, libcublasLt, libcusparse and libnvJitLink it links to)");
    }

    public String soname() { return soname; }

    public CudaDriver driver() { return cuda; }

    private void bindStream() throws Throwable {
        MemorySegment wanted = cuda.launchStream();
        if (!wanted.equals(boundStream)) {
            check("cusolverDnSetStream", (int) setStream.invokeExact(handle, wanted));
            boundStream = wanted;
        }
    }

    static String statusName(int status) {
        return status >= 0 && status < STATUS_NAMES.length ? STATUS_NAMES[status] : "cusolverStatus " + status;
    }

    private static void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(call + " failed: " + statusName(status) + " (" + status + ")", status);
        }
    }

    /**
     * Workspace, in doubles, that {@link #choleskyLower} and {@link #inverseFromCholeskyLower} need for an
     * {@code [n, n]} matrix at {@code a}: the larger of the two queries.
     */
    public synchronized int workspaceDoubles(int n, long a) {
        cuda.ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            bindStream();
            MemorySegment lwork = arena.allocate(JAVA_INT);
            check("cusolverDnDpotrf_bufferSize(n=" + n + ")",
                    (int) potrfBufferSize.invokeExact(handle, CUBLAS_FILL_MODE_LOWER, n, a, n, lwork));
            int forFactor = lwork.get(JAVA_INT, 0);
            check("cusolverDnDpotri_bufferSize(n=" + n + ")",
                    (int) potriBufferSize.invokeExact(handle, CUBLAS_FILL_MODE_LOWER, n, a, n, lwork));
            return Math.max(1, Math.max(forFactor, lwork.get(JAVA_INT, 0)));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * {@code cusolverDnDpotrf}, lower: the column-major lower triangle of {@code a} becomes L with
     * {@code A = L L^T}; the other triangle is not touched. Returns devInfo: 0, or {@code k > 0} when the leading
     * minor of order k is not positive definite (column {@code k - 1}, counting from 0, is where it failed).
     *
     * @param work    at least {@link #workspaceDoubles} doubles
     * @param devInfo one device int, overwritten
     */
    public synchronized int choleskyLower(int n, long a, long work, int lwork, long devInfo) {
        return run("cusolverDnDpotrf(n=" + n + ")", potrf, n, a, work, lwork, devInfo);
    }

    /**
     * {@code cusolverDnDpotri}, lower: from L of {@link #choleskyLower} in the lower triangle, the lower triangle of
     * {@code A^-1 = L^-T L^-1}. Returns devInfo: 0, or {@code k > 0} when {@code L[k-1][k-1]} is zero.
     */
    public synchronized int inverseFromCholeskyLower(int n, long a, long work, int lwork, long devInfo) {
        return run("cusolverDnDpotri(n=" + n + ")", potri, n, a, work, lwork, devInfo);
    }

    private int run(String call, MethodHandle routine, int n, long a, long work, int lwork, long devInfo) {
        cuda.ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            bindStream();
            check(call, (int) routine.invokeExact(handle, CUBLAS_FILL_MODE_LOWER, n, a, n, work, lwork, devInfo));
            MemorySegment info = arena.allocate(JAVA_INT);
            cuda.copyToHost(devInfo, info);  // synchronous: waits for the routine
            return info.get(JAVA_INT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
