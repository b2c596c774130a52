package org.qalora.worker.backend;

import org.qalora.quant.kernels.PreparedWeight;

/**
 * A group-quantized weight on the CPU backend: repacked once by the quant-kernels fused kernels. Only the repacked
 * copy is kept (the matrix it came from is rebuilt by {@link PreparedWeight#source()} when asked for), so a model
 * on the CPU holds its codes, scales and zeros once.
 */
record CpuQuantWeight(PreparedWeight prepared) implements LinearWeight {
    @Override
    public int outFeatures() { return prepared.outFeatures(); }

    @Override
    public int inFeatures() { return prepared.inFeatures(); }

    @Override
    public boolean quantized() { return true; }
}
