package org.qalora.quant.kernels.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;
import org.qalora.quant.kernels.KernelPool;
import org.qalora.quant.kernels.VectorDenseKernels;

/**
 * fp32 {@code C[T, O] = X[T, I] · W[O, I]^T}: OpenBLAS {@code cblas_sgemm} (same thread count, via FFM) and our
 * Vector API sgemm. The yardsticks for {@link FusedMatmulBench} on the same shape.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xmx6g"})
public class SgemmBench {
    @Param("512")
    public int tokens;
    @Param("4096")
    public int in;
    @Param("4096")
    public int out;
    @Param("0")
    public int threads;

    private KernelPool pool;
    private VectorDenseKernels dense;
    private float[] x; // [T, I]
    private float[] w; // [O, I]
    private float[] y; // [T, O]
    private OpenBlas blas;
    private Arena arena;
    private MemorySegment xNative;
    private MemorySegment wNative;
    private MemorySegment yNative;

    @Setup
    public void setUp() {
        int n = BenchData.threads(threads);
        pool = new KernelPool(n);
        dense = new VectorDenseKernels(pool);
        x = BenchData.randomFloats(2, tokens * in);
        w = BenchData.randomFloats(4, out * in);
        y = new float[tokens * out];
        blas = OpenBlas.load().orElse(null);
        if (blas != null) {
            blas.setThreads(n);
            arena = Arena.ofShared();
            xNative = arena.allocate((long) x.length * 4, 64).copyFrom(MemorySegment.ofArray(x));
            wNative = arena.allocate((long) w.length * 4, 64).copyFrom(MemorySegment.ofArray(w));
            yNative = arena.allocate((long) y.length * 4, 64);
            System.out.println("OpenBLAS core: " + blas.corename() + ", threads: " + n);
        }
    }

    @TearDown
    public void tearDown() {
        pool.close();
        if (arena != null) {
            arena.close();
        }
    }

    @Benchmark
    public void openblasSgemm(Blackhole sink) {
        if (blas == null) {
            throw new IllegalStateException("OpenBLAS (libopenblas.so.0) is not installed: no baseline");
        }
        blas.sgemmNT(tokens, out, in, xNative, wNative, yNative);
        sink.consume(yNative.get(ValueLayout.JAVA_FLOAT, 0));
    }

    @Benchmark
    public float vectorSgemm() {
        dense.matmulNT(x, 0, tokens, in, w, 0, out, y, 0, false);
        return y[y.length - 1];
    }
}
