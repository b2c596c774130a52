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

/**
 * One-token decode {@code y[O] = W x}, 1 x 4096 x 11008 (LLaMA-7B up_proj); judged against {@link CopyBench}
 * measured in the same run with the same threads.
 *
 * <p>Decode streams a different weight per layer, so the benchmark cycles through {@link #WEIGHTS} distinct
 * matrices (about 135 MB at int4 g32) to keep the weights out of the last-level cache, as in a real model.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xmx6g"})
public class GemvBench {
    static final int WEIGHTS = 4;

    @Param({"4", "2", "3", "8"})
    public int bits;
    @Param("32")
    public int groupSize;
    @Param("4096")
    public int in;
    @Param("11008")
    public int out;
    @Param("0")
    public int threads;

    private KernelPool pool;
    private VectorQuantKernels kernels;
    private final PreparedWeight[] weights = new PreparedWeight[WEIGHTS];
    private float[] x; // [I]
    private float[] y; // [O]
    private int next;

    @Setup
    public void setUp() {
        pool = new KernelPool(BenchData.threads(threads));
        kernels = new VectorQuantKernels(pool);
        for (int k = 0; k < WEIGHTS; k++) {
            weights[k] = kernels.prepare(BenchData.randomMatrix(10 + k, out, in, bits, groupSize));
        }
        x = BenchData.randomFloats(2, in);
        y = new float[out];
    }

    @TearDown
    public void tearDown() {
        pool.close();
    }

    @Benchmark
    public float gemv() {
        PreparedWeight w = weights[next];
        next = (next + 1) % WEIGHTS;
        kernels.gemv(w, x, 0, y, 0);
        return y[out - 1];
    }


    /**
     * Bytes one GEMV reads from W as the kernel stores it: packed codes (3-bit codes sit in 4-bit lanes) plus
     * fp32 scales and zeros.
     */
    static long weightBytes(int bits, int in, int out, int groupSize) {
        int laneBits = bits == 3 ? 4 : bits;
        return (long) in * out * laneBits / 8 + 2L * (in / groupSize) * out * Float.BYTES;
    }
}
