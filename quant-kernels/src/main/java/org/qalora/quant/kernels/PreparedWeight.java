package org.qalora.quant.kernels;

import org.qalora.quant.QuantizedMatrix;

/**
 * A quantized weight repacked once, at load, into the layout one {@link QuantKernels} implementation runs fastest
 * on (the Marlin/exllama lesson: keep the on-disk format standard, repack in memory).
 *
 * <p>A prepared weight belongs to the kernels that made it; handing it to another implementation is an error.
 * It is immutable and may be shared by any number of threads.
 */
public interface PreparedWeight {
    /** The matrix this was prepared from (codes, scales and zeros as loaded). */
    QuantizedMatrix source();

    default int outFeatures() { return source().outFeatures(); }

    default int inFeatures() { return source().inFeatures(); }

    default int bits() { return source().bits(); }

    default int groupSize() { return source().groupSize(); }
}
