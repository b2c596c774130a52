package org.qalora.quant.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Programmatic dependent launch (Hopper and newer): {@code cuLaunchKernelEx} with
 * {@code CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION}, so that a kernel's blocks may start while the
 * kernel before it on the stream is still finishing, once every block of that kernel has run
 * {@code griddepcontrol.launch_dependents}. A kernel launched this way must run {@code griddepcontrol.wait} (which
 * returns when the kernel before has completed and its writes are visible) before it reads anything that kernel wrote
 * or writes anything at all; before the wait it may only read what no earlier kernel writes (a decode GEMV's weights).
 * Inside a stream capture the attribute becomes a programmatic edge of the CUDA graph.
 *
 * <p>Why: a batch-1 decode step is about 260 short launches, and between two of them the GPU idles for the launch
 * gap while the next GEMV's weight stream has not begun; with this, the split-K GEMVs ({@link SplitKGemv}) issue their
 * weight loads during the previous kernel's tail. On by default from compute capability 9.0 ({@code
 * -Dqalora.cuda.pdl=false} turns it off; docs/CUDA.md says what was measured); never on below 9.0, where the kernels'
 * {@code griddepcontrol} is compiled out.
 */
final class DependentLaunch {
    static final boolean REQUESTED = Boolean.parseBoolean(System.getProperty("qalora.cuda.pdl", "true"));
    private static final int CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
    /** {@code CUlaunchConfig}: 7 unsigned ints, padding, stream, attribute pointer, attribute count, padding. */
    private static final long CONFIG_BYTES = 56, STREAM_AT = 32, ATTRS_AT = 40, COUNT_AT = 48;
    /** {@code CUlaunchAttribute}: the id, 4 bytes of padding, a 64-byte value union. */
    private static final long ATTRIBUTE_BYTES = 72, VALUE_AT = 8;

    private final CudaDriver cuda;
    private final MethodHandle cuLaunchKernelEx;

    private DependentLaunch(CudaDriver cuda) {
        this.cuda = cuda;
        cuLaunchKernelEx = cuda.handle("cuLaunchKernelEx",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    }

    /** The launcher when requested and the device runs the sm_90 PTX, else null (plain launches). */
    static DependentLaunch forDevice(CudaDriver cuda) {
        return REQUESTED && cuda.computeMajor() >= 9 ? new DependentLaunch(cuda) : null;
    }

    /** As {@link CudaDriver#launch}, with the programmatic serialization attribute (timed like it when profiling). */
    void launch(MemorySegment function, String name, int gridX, int gridY, int blockX, Object... args) {
        if (KernelProfile.ENABLED) {
            KernelProfile.run(cuda, name, () -> launchOnce(function, name, gridX, gridY, blockX, args));
        } else {
            launchOnce(function, name, gridX, gridY, blockX, args);
        }
    }

    private void launchOnce(MemorySegment function, String name, int gridX, int gridY, int blockX, Object[] args) {
        cuda.ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment attribute = arena.allocate(ATTRIBUTE_BYTES, 8);
            attribute.set(JAVA_INT, 0, CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
            attribute.set(JAVA_INT, VALUE_AT, 1);  // programmaticStreamSerializationAllowed
            MemorySegment config = arena.allocate(CONFIG_BYTES, 8);
            int[] dims = {gridX, gridY, 1, blockX, 1, 1, 0};  // grid, block, dynamic shared memory
            for (int i = 0; i < dims.length; i++) {
                config.set(JAVA_INT, 4L * i, dims[i]);
            }
            config.set(ADDRESS, STREAM_AT, cuda.launchStream());
            config.set(ADDRESS, ATTRS_AT, attribute);
            config.set(JAVA_INT, COUNT_AT, 1);
            int r = (int) cuLaunchKernelEx.invokeExact(config, function, CudaDriver.kernelParams(arena, name, args),
                    MemorySegment.NULL);
            if (r != 0) {
                throw new CudaException("cuLaunchKernelEx(" + name + ", programmatic dependent launch, grid " + gridX
                        + "x" + gridY + ", block " + blockX + ") failed: " + cuda.errorName(r) + " (" + r + "): "
                        + cuda.errorString(r) + "; run with -Dqalora.cuda.pdl=false", r);
            }
        } catch (CudaException | IllegalArgumentException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
