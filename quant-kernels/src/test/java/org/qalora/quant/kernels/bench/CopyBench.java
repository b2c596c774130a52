package org.qalora.quant.kernels.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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

/** Plain memory-copy bandwidth, the yardstick of {@link GemvBench}: same threads, buffers far beyond any cache. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Xmx2g"})
public class CopyBench {
    /** 128 MB read plus 128 MB written per call. */
    static final long COPY_BYTES = 128L << 20;

    @Param("0")
    public int threads;

    private KernelPool pool;
    private Arena arena;
    private MemorySegment source;
    private MemorySegment target;

    @Setup
    public void setUp() {
        pool = new KernelPool(BenchData.threads(threads));
        arena = Arena.ofShared();
        source = arena.allocate(COPY_BYTES, 4096).fill((byte) 1);
        target = arena.allocate(COPY_BYTES, 4096).fill((byte) 0);
    }

    @TearDown
    public void tearDown() {
        pool.close();
        arena.close();
    }

    /** MemorySegment.copy of COPY_BYTES, split in equal contiguous chunks over the threads. */
    @Benchmark
    public long memoryCopy() {
        int chunks = pool.threads();
        long chunk = COPY_BYTES / chunks;
        pool.run(chunks, c -> MemorySegment.copy(source, c * chunk, target, c * chunk, chunk));
        return target.byteSize();
    }
}
