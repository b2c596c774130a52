package org.qalora.quant.kernels.bench;

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
import org.qalora.quant.kernels.KernelPool;
import org.qalora.quant.kernels.PreparedWeight;
import org.qalora.quant.kernels.VectorQuantKernels;

/** Fused dequantize-and-multiply {@code y[T, O] = x[T, I] · W^T} and the transposed product, low-bit W. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xmx6g"})
public class FusedMatmulBench {
    @Param({"4", "2", "3", "8"})
    public int bits;
    @Param("32")
    public int groupSize;
    @Param("512")
    public int tokens;
    @Param("4096")
    public int in;
    @Param("4096")
    public int out;
    @Param("0")
    public int threads;

    private KernelPool pool;
    private VectorQuantKernels kernels;
    private PreparedWeight weight;
    private float[] x; // [T, I]
    private float[] y; // [T, O]
    private float[] dy; // [T, O]
    private float[] dx; // [T, I]

    @Setup
    public void setUp() {
        pool = new KernelPool(BenchData.threads(threads));
        kernels = new VectorQuantKernels(pool);
        weight = kernels.prepare(BenchData.randomMatrix(1, out, in, bits, groupSize));
        x = BenchData.randomFloats(2, tokens * in);
        y = new float[tokens * out];
        dy = BenchData.randomFloats(3, tokens * out);
        dx = new float[tokens * in];
    }

    @TearDown
    public void tearDown() {
        pool.close();
    }

    @Benchmark
    public float fusedMatmul() {
        kernels.matmul(weight, x, 0, tokens, y, 0);
        return y[y.length - 1];
    }

    @Benchmark
    public float fusedMatmulTransposed() {
        kernels.matmulTransposed(weight, dy, 0, tokens, dx, 0, false);
        return dx[dx.length - 1];
    }
}
