package org.qalora.quant.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * CUDA graphs through the driver API: a sequence of launches recorded once by stream capture and replayed with one
 * {@code cuGraphLaunch}. A decode step is about 600 small launches at 5-7 us each from Java; replayed as a graph it
 * costs the GPU's own launch gaps only.
 *
 * <p>A capture runs {@code work} on the calling thread with {@link CudaDriver}'s launch stream switched to a
 * <em>blocking</em> stream of this device: every launch, memset and device copy of the work (and cuBLAS, which
 * follows that stream) is recorded, not run. The capture mode is thread-local: a call in the work that cannot be
 * captured (a synchronous copy to or from the host, an allocation, anything on the legacy default stream) fails the
 * capture with the driver's error instead of running out of order. Replays go to the same blocking stream, which the
 * legacy default stream waits for and which waits for it, so host copies before and after a replay stay ordered.
 *
 * <p>A graph holds raw device addresses: the buffers its launches read and write must outlive it and must not move.
 */
public final class CudaGraphs {
    private static final int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
    private static final ConcurrentHashMap<Integer, CudaGraphs> INSTANCES = new ConcurrentHashMap<>();

    private final CudaDriver cuda;
    private final MethodHandle cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch,
            cuGraphExecDestroy, cuGraphDestroy;
    private final MemorySegment stream;
    private final java.util.concurrent.atomic.AtomicLong captures = new java.util.concurrent.atomic.AtomicLong();

    private CudaGraphs(CudaDriver cuda) {
        this.cuda = cuda;
        cuStreamBeginCapture = cuda.handle("cuStreamBeginCapture_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuStreamEndCapture = cuda.handle("cuStreamEndCapture", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuGraphInstantiate = cuda.handle("cuGraphInstantiateWithFlags",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
        cuGraphLaunch = cuda.handle("cuGraphLaunch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuGraphExecDestroy = cuda.handle("cuGraphExecDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuGraphDestroy = cuda.handle("cuGraphDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle cuStreamCreate = cuda.handle("cuStreamCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuda.ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            cuda.check("cuStreamCreate", (int) cuStreamCreate.invokeExact(out, 0));  // 0: blocking (syncs with legacy)
            stream = out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The graphs of one device (one capture stream per device, for the process's lifetime). */
    public static CudaGraphs of(CudaDriver cuda) {
        return INSTANCES.computeIfAbsent(cuda.ordinal(), o -> new CudaGraphs(cuda));
    }

    /**
     * Records the launches {@code work} makes on this thread into an executable graph; nothing runs. Throws the
     * driver's error when the work did something a capture cannot record (the capture is then ended and dropped).
     */
    public Graph capture(Runnable work) {
        cuda.ensureCurrent();
        MemorySegment previous = cuda.launchStream();
        MemorySegment graph = MemorySegment.NULL;
        try (Arena arena = Arena.ofConfined()) {
            cuda.check("cuStreamBeginCapture_v2",
                    (int) cuStreamBeginCapture.invokeExact(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
            cuda.launchStream(stream);
            Throwable failure = null;
            try {
                work.run();
            } catch (Throwable t) {
                failure = t;
            } finally {
                cuda.launchStream(previous);
                MemorySegment out = arena.allocate(ADDRESS);
                int r = (int) cuStreamEndCapture.invokeExact(stream, out);
                graph = out.get(ADDRESS, 0);
                if (failure == null && r != 0) {
                    failure = new CudaException("cuStreamEndCapture failed: " + cuda.errorName(r) + " (" + r + "): "
                            + cuda.errorString(r) + " -- the captured work made a call a graph cannot record", r);
                }
            }
            if (failure != null) {
                destroyGraph(graph);
                throw failure instanceof RuntimeException re ? re : new CudaException("graph capture failed: " + failure);
            }
            MemorySegment exec = arena.allocate(ADDRESS);
            cuda.check("cuGraphInstantiateWithFlags", (int) cuGraphInstantiate.invokeExact(exec, graph, 0L));
            captures.incrementAndGet();
            return new Graph(exec.get(ADDRESS, 0), graph);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Graphs captured on this device so far (tests and benchmarks check that replays happen). */
    public long captures() { return captures.get(); }

    private void destroyGraph(MemorySegment graph) {
        if (!graph.equals(MemorySegment.NULL)) {
            try {
                int ignored = (int) cuGraphDestroy.invokeExact(graph);
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
        }
    }

    /** An instantiated graph: {@link #launch} replays it; {@link #close} frees it (idempotent). */
    public final class Graph implements AutoCloseable {
        private MemorySegment exec;
        private MemorySegment graph;

        private Graph(MemorySegment exec, MemorySegment graph) {
            this.exec = exec;
            this.graph = graph;
        }

        /** Enqueues one replay (asynchronous; the next host copy on the default stream waits for it). */
        public void launch() {
            if (exec == null) {
                throw new IllegalStateException("this CUDA graph was closed");
            }
            cuda.ensureCurrent();
            try {
                cuda.check("cuGraphLaunch", (int) cuGraphLaunch.invokeExact(exec, stream));
            } catch (CudaException e) {
                throw e;
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
        }

        @Override
        public void close() {
            if (exec == null) {
                return;
            }
            cuda.ensureCurrent();
            try {
                int ignored = (int) cuGraphExecDestroy.invokeExact(exec);
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
            destroyGraph(graph);
            exec = null;
            graph = null;
        }
    }
}
