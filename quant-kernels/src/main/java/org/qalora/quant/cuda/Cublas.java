package org.qalora.quant.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.util.List;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLAS through FFM, looked up by soname at run time ({@code libcublas.so.13}, else {@code .12}): the dense
 * reference products and the "dequantize, then a dense GEMM" path. It runs on the primary context that
 * {@link CudaDriver} made current, so device pointers are shared.
 *
 * <p>cuBLAS is column-major; {@link #linear} hides that: a row-major {@code Y[T, O] = X[T, I] . W[O, I]^T} is the
 * column-major {@code Y^T[O, T] = op_T(W^T)[O, I] . X^T[I, T]}, i.e. {@code gemm(T, N, m=O, n=T, k=I, A=W lda=I,
 * B=X ldb=I, C=Y ldc=O)} with no transposition in memory.
 */
public final class Cublas {
    /** Input precision / math mode of {@link #linear}. */
    public enum Precision {
        /** cublasSgemm, full fp32 FMA. */
        FP32,
        /** cublasGemmEx on fp32 data with CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, 10-bit mantissa inputs). */
        TF32,
        /** cublasGemmEx on bf16 inputs, fp32 accumulate and output. */
        BF16
    }

    private static final int CUBLAS_OP_N = 0;
    private static final int CUBLAS_OP_T = 1;
    private static final int CUDA_R_32F = 0;
    private static final int CUDA_R_16BF = 14;
    private static final int CUBLAS_COMPUTE_32F = 68;
    private static final int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
    private static final int CUBLAS_GEMM_DEFAULT = -1;
    private static final String[] SONAMES = {"libcublas.so.13", "libcublas.so.12"};

    /** Element types of {@link #gemm} operands, with their cudaDataType values. */
    public enum DType {
        F32(0, 4), BF16(14, 2);

        final int cuda;
        final int bytes;

        DType(int cuda, int bytes) {
            this.cuda = cuda;
            this.bytes = bytes;
        }

        public int bytes() { return bytes; }
    }

    private static final java.util.concurrent.ConcurrentHashMap<Integer, LazyNative<Cublas>> INSTANCES =
            new java.util.concurrent.ConcurrentHashMap<>();

    private final String soname;
    private final CudaDriver cuda;
    private final MethodHandle sgemm;
    private final MethodHandle gemmEx;
    private final MethodHandle gemmStridedBatchedEx;
    private final MethodHandle statusName;
    private final MethodHandle setStream;
    /** The stream the handle is bound to; follows the calling thread's launch stream (a graph capture's). */
    private MemorySegment boundStream = MemorySegment.NULL;
    private final MemorySegment handle;
    private final MemorySegment one;
    private final MemorySegment zero;

    private Cublas(CudaDriver cuda, SymbolLookup lib, String soname) {
        this.soname = soname;
        this.cuda = cuda;
        Linker linker = Linker.nativeLinker();
        MethodHandle create = linker.downcallHandle(find(lib, "cublasCreate_v2"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        sgemm = linker.downcallHandle(find(lib, "cublasSgemm_v2"), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT,
                ADDRESS, JAVA_LONG, JAVA_INT));
        gemmEx = linker.downcallHandle(find(lib, "cublasGemmEx"), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG,
                JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
        gemmStridedBatchedEx = linker.downcallHandle(find(lib, "cublasGemmStridedBatchedEx"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS,
                        JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS,
                        JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT));
        setStream = linker.downcallHandle(find(lib, "cublasSetStream_v2"), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                ADDRESS));
        statusName = lib.find("cublasGetStatusName")
                .map(s -> linker.downcallHandle(s, FunctionDescriptor.of(ADDRESS, JAVA_INT)))
                .orElse(null);
        cuda.synchronize();  // makes the primary context current on this thread before cuBLAS looks for one
        Arena arena = Arena.global();
        MemorySegment h = arena.allocate(ADDRESS);
        try {
            check("cublasCreate_v2", (int) create.invokeExact(h));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        handle = h.get(ADDRESS, 0);
        one = arena.allocateFrom(JAVA_FLOAT, 1f);
        zero = arena.allocateFrom(JAVA_FLOAT, 0f);
    }

    /**
     * Makes the handle's stream the calling thread's launch stream (see {@link CudaGraphs}): products made during a
     * capture are recorded into the graph. Called inside each synchronized product, so threads cannot interleave.
     */
    private void bindStream() throws Throwable {
        MemorySegment wanted = cuda.launchStream();
        if (!wanted.equals(boundStream)) {
            check("cublasSetStream_v2", (int) setStream.invokeExact(handle, wanted));
            boundStream = wanted;
        }
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return CudaLibraryLoader.symbol(lib, "cuBLAS", name);
    }

    /** True when a cuBLAS library loads and a handle is created on device 0; never throws. */
    public static boolean available() {
        return available(0);
    }

    /** True when a cuBLAS library loads and a handle is created on device {@code ordinal}; never throws. */
    public static boolean available(int ordinal) {
        return instance(ordinal).available();
    }

    public static String unavailableReason() {
        return unavailableReason(0);
    }

    public static String unavailableReason(int ordinal) {
        return instance(ordinal).unavailableReason();
    }

    /** The handle on device 0. */
    public static Cublas get() {
        return get(0);
    }

    /** The handle on device {@code ordinal} (one per device: a handle belongs to the context it was made in). */
    public static Cublas get(int ordinal) {
        return instance(ordinal).get();
    }

    private static LazyNative<Cublas> instance(int ordinal) {
        return INSTANCES.computeIfAbsent(ordinal, o -> new LazyNative<>(() -> open(CudaDriver.get(o))));
    }

    private static Cublas open(CudaDriver cuda) {
        return CudaLibraryLoader.openFirst("cuBLAS", List.of(SONAMES), (lib, soname) -> new Cublas(cuda, lib, soname),
                "install the CUDA toolkit's libcublas");
    }

    public String soname() { return soname; }

    private void check(String call, int status) {
        if (status != 0) {
            String name = "status " + status;
            if (statusName != null) {
                try {
                    name = ((MemorySegment) statusName.invokeExact(status)).reinterpret(256)
                            .getString(0, StandardCharsets.UTF_8);
                } catch (Throwable ignored) {
                    // keep the number
                }
            }
            throw new CudaException(call + " failed: " + name + " (" + status + ")", status);
        }
    }

    /**
     * Row-major {@code dx[T, I] (+)= dy[T, O] . w[O, I]} in fp32 (cublasSgemm): column-major
     * {@code dx^T[I, T] = w^T[I, O] . dy^T[O, T]}, i.e. {@code gemm(N, N, m=I, n=T, k=O, A=w lda=I, B=dy ldb=O,
     * C=dx ldc=I)}, with {@code beta = 1} to accumulate.
     */
    public synchronized void linearTransposed(long w, long dy, int tokens, int out, int in, long dx,
                                              boolean accumulate) {
        // A local, not a conditional expression, in the call: invokeExact would type "c ? one : zero" as Object.
        MemorySegment beta = accumulate ? one : zero;
        cuda.ensureCurrent();
        try {
            bindStream();
            int r = (int) sgemm.invokeExact(handle, CUBLAS_OP_N, CUBLAS_OP_N, in, tokens, out, one,
                    w, in, dy, out, beta, dx, in);
            check("cublasSgemm_v2", r);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Row-major {@code y[T, O] = x[T, I] . w[O, I]^T} on device pointers (fp32 {@code w}, {@code x} for FP32 and
     * TF32, bf16 for BF16; fp32 {@code y} always).
     */
    public synchronized void linear(Precision precision, long w, long x, int tokens, int out, int in, long y) {
        if (KernelProfile.ENABLED) {   // the name is built only when profiling: this is every product's path
            KernelProfile.run(cuda, "cublas linear " + precision + " " + tokens + "x" + out + "x" + in,
                    () -> linearOnce(precision, w, x, tokens, out, in, y));
        } else {
            linearOnce(precision, w, x, tokens, out, in, y);
        }
    }

    private void linearOnce(Precision precision, long w, long x, int tokens, int out, int in, long y) {
        cuda.ensureCurrent();
        try {
            bindStream();
            int r = switch (precision) {
                case FP32 -> (int) sgemm.invokeExact(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, tokens, in, one,
                        w, in, x, in, zero, y, out);
                case TF32 -> (int) gemmEx.invokeExact(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, tokens, in, one,
                        w, CUDA_R_32F, in, x, CUDA_R_32F, in, zero, y, CUDA_R_32F, out,
                        CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
                case BF16 -> (int) gemmEx.invokeExact(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, tokens, in, one,
                        w, CUDA_R_16BF, in, x, CUDA_R_16BF, in, zero, y, CUDA_R_32F, out,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            };
            check(precision == Precision.FP32 ? "cublasSgemm_v2" : "cublasGemmEx(" + precision + ")", r);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Row-major, strided-batched {@code C_i[M, N] = alpha op(A_i) op(B_i) + beta C_i} for {@code i < batch}, with
     * fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32 on fp32 inputs). {@code op(A)} is {@code [M, K]}: with
     * {@code transA} the array {@code a} holds it transposed ({@code [K, M]}). Leading dimensions and strides count
     * elements. A and B must have the same type; C may be fp32 or bf16.
     *
     * <p>Row-major C is column-major C^T = op(B)^T op(A)^T, so the call swaps the operands and keeps each one's
     * transposition flag; nothing is transposed in memory.
     */
    public synchronized void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                  long a, DType aType, int lda, long strideA, long b, DType bType, int ldb,
                                  long strideB, float beta, long c, DType cType, int ldc, long strideC, int batch) {
        if (KernelProfile.ENABLED) {
            KernelProfile.run(cuda, "cublas gemm " + batch + " x " + m + "x" + n + "x" + k + " " + aType + "->" + cType,
                    () -> gemmOnce(transA, transB, m, n, k, alpha, a, aType, lda, strideA, b, bType, ldb, strideB,
                            beta, c, cType, ldc, strideC, batch));
        } else {
            gemmOnce(transA, transB, m, n, k, alpha, a, aType, lda, strideA, b, bType, ldb, strideB, beta, c, cType,
                    ldc, strideC, batch);
        }
    }

    private void gemmOnce(boolean transA, boolean transB, int m, int n, int k, float alpha,
                          long a, DType aType, int lda, long strideA, long b, DType bType, int ldb,
                          long strideB, float beta, long c, DType cType, int ldc, long strideC, int batch) {
        if (aType != bType) {
            throw new IllegalArgumentException("gemm operands must share a type, got " + aType + " and " + bType);
        }
        int opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
        cuda.ensureCurrent();  // the handle belongs to its device's context; this thread may have used another
        try (Arena arena = Arena.ofConfined()) {
            bindStream();
            MemorySegment al = arena.allocateFrom(JAVA_FLOAT, alpha), be = arena.allocateFrom(JAVA_FLOAT, beta);
            int r;
            if (batch == 1) {
                r = (int) gemmEx.invokeExact(handle, opB, opA, n, m, k, al, b, bType.cuda, ldb, a, aType.cuda, lda,
                        be, c, cType.cuda, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                check("cublasGemmEx(" + m + "x" + n + "x" + k + ", " + aType + " -> " + cType + ")", r);
            } else {
                r = (int) gemmStridedBatchedEx.invokeExact(handle, opB, opA, n, m, k, al, b, bType.cuda, ldb,
                        strideB, a, aType.cuda, lda, strideA, be, c, cType.cuda, ldc, strideC, batch,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                check("cublasGemmStridedBatchedEx(" + batch + " x " + m + "x" + n + "x" + k + ", " + aType + " -> "
                        + cType + ")", r);
            }
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
