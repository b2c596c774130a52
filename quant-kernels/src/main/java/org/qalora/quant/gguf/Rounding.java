package org.qalora.quant.gguf;

/**
 * How far converted weights are from the ones they came from, as the GGUF export reports it per tensor.
 *
 * @param maxError      max over weights of |stored - original|, in exact arithmetic
 * @param maxErrorRatio max over weights of that error divided by its half-rounding bound (at most 1 when the bound
 *                      holds; 0 for a tensor stored exactly)
 * @param maxMagnitude  the largest magnitude the rounding applied to (|S Z| for Q4_1, |w| for halves): the error
 *                      scales with it
 */
public record Rounding(double maxError, double maxErrorRatio, double maxMagnitude) {
    public static final Rounding NONE = new Rounding(0, 0, 0);

    public Rounding max(Rounding o) {
        return new Rounding(Math.max(maxError, o.maxError), Math.max(maxErrorRatio, o.maxErrorRatio),
                Math.max(maxMagnitude, o.maxMagnitude));
    }
}
