package org.qalora.quant.kernels;

import org.qalora.quant.QuantizedMatrix;

/**
 * A quantized weight repacked once, at load, into the layout one {@link QuantKernels} implementation runs fastest
 * on (the Marlin/exllama lesson: keep the on-disk format standard, repack in memory).
 *
 * <p>A prepared weight belongs to the kernels that made it; handing it to another implementation is an error.
 * It is immutable and may be shared by any number of threads.
 *
 * <p>The shape methods read {@link #source()} by default; a layout that keeps no copy of its source rebuilds it on
 * every {@code source()} call, so it must override them: the kernels call them on every product.
 */
public interface PreparedWeight {
    /**
     * The matrix this was prepared from: its codes, scales and zeros bit for bit as loaded. A layout that keeps
     * no copy of the source (so that a loaded model holds its weights once, {@link BlockedQuantWeight}) rebuilds
     * it from its own arrays on each call: a fresh host copy, to be let go once read.
     */
    QuantizedMatrix source();

    default int outFeatures() { return source().outFeatures(); }

    default int inFeatures() { return source().inFeatures(); }

    default int bits() { return source().bits(); }

    default int groupSize() { return source().groupSize(); }
}
