package org.qalora.worker.backend;

import org.qalora.quant.QuantizedMatrix;

/**
 * A group-quantized weight on the CPU backend. Stand-in until the quant-kernels fused kernels land: dequantizes
 * once into a dense [out, in] float copy.
 */
final class CpuQuantWeight implements LinearWeight {
    private final QuantizedMatrix matrix;
    private final float[] dense; // [O, I]

    CpuQuantWeight(QuantizedMatrix matrix) {
        this.matrix = matrix;
        this.dense = matrix.dequantize();
    }

    @Override
    public int outFeatures() { return matrix.outFeatures(); }

    @Override
    public int inFeatures() { return matrix.inFeatures(); }

    @Override
    public boolean quantized() { return true; }

    void forward(FixedPartition par, float[] x, int n, float[] y) {
        NaiveMatmul.nt(par, x, dense, y, n, outFeatures(), inFeatures(), false);
    }

    void backwardInput(FixedPartition par, float[] dy, int n, float[] dx) {
        NaiveMatmul.nn(par, dy, dense, dx, n, inFeatures(), outFeatures(), true);
    }
}
