package org.qalora.worker.backend;

import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.PreparedWeight;

/** A group-quantized weight on the CPU backend: repacked once by the quant-kernels fused kernels. */
record CpuQuantWeight(QuantizedMatrix matrix, PreparedWeight prepared) implements LinearWeight {
    @Override
    public int outFeatures() { return matrix.outFeatures(); }

    @Override
    public int inFeatures() { return matrix.inFeatures(); }

    @Override
    public boolean quantized() { return true; }
}
