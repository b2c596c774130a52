package org.qalora.quant.kernels;

import org.qalora.quant.QuantizedMatrix;

/**
 * The naive oracle for {@link QuantKernels}: every weight is computed from its definition
 * ({@link QuantizedMatrix#weight}) and every dot product is summed in double, one element at a time. Slow by
 * design; tests compare the fast kernels against it.
 */
public final class ReferenceQuantKernels implements QuantKernels {

    /** The reference keeps the matrix as it is: its "layout" is the canonical one. */
    private record Prepared(QuantizedMatrix source) implements PreparedWeight {}

    @Override
    public PreparedWeight prepare(QuantizedMatrix m) {
        return new Prepared(m);
    }

    private static QuantizedMatrix matrixOf(PreparedWeight w) {
        if (!(w instanceof Prepared p)) {
            throw new IllegalArgumentException("weight " + w + " was prepared by another QuantKernels implementation;"
                    + " prepare it with ReferenceQuantKernels");
        }
        return p.source();
    }

    @Override
    public void matmul(PreparedWeight w, float[] x, int xOff, int tokens, float[] y, int yOff) {
        QuantizedMatrix m = matrixOf(w);
        int in = m.inFeatures();
        int out = m.outFeatures();
        Checks.tokens(tokens);
        Checks.matrix("x", x, xOff, tokens, in, in);
        Checks.matrix("y", y, yOff, tokens, out, out);
        for (int t = 0; t < tokens; t++) {
            for (int o = 0; o < out; o++) {
                double sum = 0;
                for (int i = 0; i < in; i++) {
                    sum += (double) x[xOff + t * in + i] * m.weight(o, i);
                }
                y[yOff + t * out + o] = (float) sum;
            }
        }
    }

    @Override
    public void matmulTransposed(PreparedWeight w, float[] dy, int dyOff, int tokens, float[] dx, int dxOff,
                                 boolean accumulate) {
        QuantizedMatrix m = matrixOf(w);
        int in = m.inFeatures();
        int out = m.outFeatures();
        Checks.tokens(tokens);
        Checks.matrix("dy", dy, dyOff, tokens, out, out);
        Checks.matrix("dx", dx, dxOff, tokens, in, in);
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < in; i++) {
                double sum = accumulate ? dx[dxOff + t * in + i] : 0;
                for (int o = 0; o < out; o++) {
                    sum += (double) dy[dyOff + t * out + o] * m.weight(o, i);
                }
                dx[dxOff + t * in + i] = (float) sum;
            }
        }
    }

    @Override
    public void gemv(PreparedWeight w, float[] x, int xOff, float[] y, int yOff) {
        matmul(w, x, xOff, 1, y, yOff);
    }

    @Override
    public void dequantize(PreparedWeight w, float[] out) {
        QuantizedMatrix m = matrixOf(w);
        int in = m.inFeatures();
        Checks.matrix("out", out, 0, m.outFeatures(), in, in);
        for (int o = 0; o < m.outFeatures(); o++) {
            for (int i = 0; i < in; i++) {
                out[o * in + i] = m.weight(o, i);
            }
        }
    }
}
