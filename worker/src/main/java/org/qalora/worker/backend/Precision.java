package org.qalora.worker.backend;

import java.util.Locale;

/**
 * The arithmetic a backend trains in. Recorded in a run's settings and config hash: two runs that differ in it are
 * different runs.
 */
public enum Precision {
    /** Everything in float32, tensor cores off (no TF32): the exact mode, which matches the CPU backend. */
    FP32,
    /**
     * Mixed precision as PyTorch autocast does it: bf16 activations and dequantized weights into the matrix units,
     * fp32 accumulation, fp32 residual stream, norms statistics, adapter weights, gradients, Adam moments and loss.
     */
    BF16;

    /** {@code fp32} / {@code bf16} (any case); the error lists what exists. */
    public static Precision parse(String s, String what) {
        if (s != null) {
            for (Precision p : values()) {
                if (p.name().equalsIgnoreCase(s.trim())) {
                    return p;
                }
            }
        }
        throw new IllegalArgumentException(what + " '" + s + "' is not a precision: use fp32 (exact) or bf16 (GPU mixed"
                + " precision), or auto (bf16 on a GPU, fp32 on the CPU)");
    }

    public String label() { return name().toLowerCase(Locale.ROOT); }
}
