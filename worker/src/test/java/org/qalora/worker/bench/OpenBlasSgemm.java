package org.qalora.worker.bench;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * OpenBLAS {@code cblas_sgemm} through FFM, the yardstick of the training-step benchmark: the FLOP rate a tuned
 * native sgemm reaches on this machine with the same thread count, measured in the same run.
 */
final class OpenBlasSgemm {
    private static final List<String> CANDIDATES = List.of("/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
            "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", "/usr/lib64/libopenblas.so.0");
    private final MethodHandle sgemm;

    private OpenBlasSgemm(MethodHandle sgemm) {
        this.sgemm = sgemm;
    }

    /** Loads the library and sets its thread count; fails with the paths tried when it is not installed. */
    static OpenBlasSgemm load(int threads) throws Throwable {
        for (String candidate : CANDIDATES) {
            if (Files.exists(Path.of(candidate))) {
                Linker linker = Linker.nativeLinker();
                SymbolLookup lib = SymbolLookup.libraryLookup(Path.of(candidate), Arena.global());
                MethodHandle setThreads = linker.downcallHandle(lib.find("openblas_set_num_threads").orElseThrow(),
                        FunctionDescriptor.ofVoid(JAVA_INT));
                setThreads.invokeExact(threads);
                MethodHandle h = linker.downcallHandle(lib.find("cblas_sgemm").orElseThrow(),
                        FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT,
                                ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT));
                return new OpenBlasSgemm(h);
            }
        }
        throw new IllegalStateException("OpenBLAS not found (tried " + CANDIDATES + "): apt-get install libopenblas0");
    }

    /**
     * GFLOP/s of {@code C[m,n] = A[m,k] B[n,k]^T} (row-major), best of {@code reps} calls after one warm-up: per
     * wall-clock second, and per second of this process's CPU time (which stays meaningful when other jobs share
     * the machine).
     */
    Rate gflops(int m, int n, int k, int reps) throws Throwable {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate((long) m * k * 4, 64);
            MemorySegment b = arena.allocate((long) n * k * 4, 64);
            MemorySegment c = arena.allocate((long) m * n * 4, 64);
            for (long i = 0; i < (long) m * k; i++) {
                a.setAtIndex(JAVA_FLOAT, i, (float) Math.sin(i));
            }
            for (long i = 0; i < (long) n * k; i++) {
                b.setAtIndex(JAVA_FLOAT, i, (float) Math.cos(i));
            }
            double bestWall = Double.MAX_VALUE, bestCpu = Double.MAX_VALUE;
            for (int r = 0; r <= reps; r++) {
                long cpu0 = Rate.processCpuNanos(), t0 = System.nanoTime();
                sgemm.invokeExact(101, 111, 112, m, n, k, 1f, a, k, b, k, 0f, c, n); // RowMajor, NoTrans, Trans
                long dt = System.nanoTime() - t0, dcpu = Rate.processCpuNanos() - cpu0;
                if (r > 0) {
                    bestWall = Math.min(bestWall, dt);
                    bestCpu = Math.min(bestCpu, dcpu);
                }
            }
            double work = 2.0 * m * n * k;
            return new Rate(work / bestWall, work / bestCpu);
        }
    }

    /** GFLOP per wall-clock second and per process-CPU second. */
    record Rate(double wall, double cpu) {
        static long processCpuNanos() {
            return ((com.sun.management.OperatingSystemMXBean)
                    java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
        }

        Rate max(Rate o) {
            return new Rate(Math.max(wall, o.wall), Math.max(cpu, o.cpu));
        }
    }
}
