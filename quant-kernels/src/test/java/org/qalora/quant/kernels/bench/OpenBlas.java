package org.qalora.quant.kernels.bench;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * OpenBLAS {@code cblas_sgemm} through FFM, for benchmarks only: it is the yardstick the kernels (and the worker's
 * training-step benchmark, through the quant-kernels test-jar) are measured against, never a dependency of main
 * code or unit tests. Debian ships it as {@code libopenblas0-pthread} ({@code libopenblas.so.0}).
 *
 * <p>Callers should print {@link #corename()} with their figures: an inherited {@code OPENBLAS_CORETYPE} forces a
 * weaker kernel family (see {@code bin/bench-kernels}).
 */
public final class OpenBlas {
    private static final int ROW_MAJOR = 101;
    private static final int NO_TRANS = 111;
    private static final int TRANS = 112;

    private final MethodHandle sgemm;
    private final MethodHandle setNumThreads;
    private final MethodHandle getCorename;

    private OpenBlas(SymbolLookup lookup) {
        Linker linker = Linker.nativeLinker();
        sgemm = linker.downcallHandle(lookup.find("cblas_sgemm").orElseThrow(),
                FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT,
                        ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT));
        setNumThreads = linker.downcallHandle(lookup.find("openblas_set_num_threads").orElseThrow(),
                FunctionDescriptor.ofVoid(JAVA_INT));
        getCorename = linker.downcallHandle(lookup.find("openblas_get_corename").orElseThrow(),
                FunctionDescriptor.of(ADDRESS));
    }

    /** The library, or empty (with the reason on stderr) when libopenblas.so.0 cannot be loaded. */
    public static Optional<OpenBlas> load() {
        try {
            return Optional.of(new OpenBlas(SymbolLookup.libraryLookup("libopenblas.so.0", Arena.global())));
        } catch (IllegalArgumentException | java.util.NoSuchElementException e) {
            System.err.println("OpenBLAS not available (" + e.getMessage() + "): install Debian's libopenblas0-pthread"
                    + " (apt-get install -y libopenblas0-pthread); the OpenBLAS baseline and ratios are skipped");
            return Optional.empty();
        }
    }

    public void setThreads(int threads) {
        try {
            setNumThreads.invokeExact(threads);
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
    }

    /** The kernel family OpenBLAS picked for this CPU (e.g. "Haswell", "SkylakeX", "Zen"). */
    public String corename() {
        try {
            MemorySegment name = (MemorySegment) getCorename.invokeExact();
            return name.reinterpret(64).getString(0);
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
    }

    /** Row-major {@code C[m, n] = A[m, k] · B[n, k]^T} (the shape of {@code y = x W^T}). */
    public void sgemmNT(int m, int n, int k, MemorySegment a, MemorySegment b, MemorySegment c) {
        try {
            sgemm.invokeExact(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1f, a, k, b, k, 0f, c, n);
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
    }
}
