package org.qalora.quant.kernels;

import org.qalora.quant.QuantizedMatrix;

/**
 * Low-bit kernels over a group-quantized weight {@code W[O, I]}, {@code W[o, i] = scale[k, o] * (Q[i, o] -
 * zero[k, o])}, {@code k = i / groupSize} (see {@link QuantizedMatrix}). 2, 3, 4 and 8 bits, any group size that
 * divides the input dimension, real-valued zeros.
 *
 * <p>All activations are row-major float arrays with an offset: a tensor {@code [T, F]} occupies
 * {@code a[off .. off + T*F)}. Implementations: {@link ReferenceQuantKernels} (naive, the oracle) and
 * {@link VectorQuantKernels} (Vector API, multi-threaded over a fixed partition of the output, so results are
 * bit-identical across runs and thread counts).
 */
public interface QuantKernels {
    /** Repacks {@code m} into this implementation's layout. Call once per weight, at load. */
    PreparedWeight prepare(QuantizedMatrix m);

    /**
     * The same weight with new zero points {@code [groups, O]} (what a QA-LoRA merge changes). Implementations
     * may share the repacked codes with {@code w}.
     */
    default PreparedWeight withZeros(PreparedWeight w, float[] zeros) {
        return prepare(w.source().withZeros(zeros));
    }

    /**
     * Fused dequantize-and-multiply for training shapes: {@code y[T, O] = x[T, I] · W^T}. {@code y} is
     * overwritten.
     */
    void matmul(PreparedWeight w, float[] x, int xOff, int tokens, float[] y, int yOff);

    /**
     * The product the backward pass needs: {@code dx[T, I] (+)= dy[T, O] · W}. With {@code accumulate} the
     * result is added to {@code dx}, otherwise {@code dx} is overwritten.
     */
    void matmulTransposed(PreparedWeight w, float[] dy, int dyOff, int tokens, float[] dx, int dxOff,
                          boolean accumulate);

    /** One-token decode: {@code y[O] = W · x[I]}. {@code y} is overwritten. */
    void gemv(PreparedWeight w, float[] x, int xOff, float[] y, int yOff);

    /**
     * One-token decode with x rounded to int8 first: {@code y[O] = W · x̂[I]}, x̂ the values
     * {@link Int8Activations#quantize} stands for (one scale per 32 inputs). Not the exact product: x̂ differs
     * from x by up to 1/254 of each 32-input block's largest value, about 0.5% relative RMS on y. An explicit
     * choice a decoder opts into (worker {@code CpuBackend(threads, true)}); training and anything that must match
     * the full forward use {@link #gemv}. This default computes the contract with {@link #gemv} on x̂;
     * {@link VectorQuantKernels} multiplies the codes by the int8 values in integer lanes.
     */
    default void gemvInt8Activations(PreparedWeight w, float[] x, int xOff, float[] y, int yOff) {
        gemv(w, Int8Activations.quantize(x, xOff, w.inFeatures()).dequantized(), 0, y, yOff);
    }

    /** The dense weight {@code W[O, I]}, row-major, into {@code out[0 .. O*I)}. */
    void dequantize(PreparedWeight w, float[] out);
}
