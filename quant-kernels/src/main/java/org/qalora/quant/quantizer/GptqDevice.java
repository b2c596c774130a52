package org.qalora.quant.quantizer;

import java.util.Objects;

/**
 * Where GPTQ's two heavy stages run: the inverse-Hessian factor ({@code O(in^3)}, {@link InverseFactorSolver}) and
 * the column stage ({@code O(out * in^2)}, {@link GptqColumns}). {@link GptqSolve#device} makes one for a run's
 * {@code --gptq-solve} choice; {@link GptqQuantizer#on} applies it.
 *
 * <p>Only the solver changes results (the GPU's factor agrees with the CPU's within 1e-9, not bit for bit); the two
 * column stages give the same bits for the same factor.
 */
public record GptqDevice(InverseFactorSolver solver, GptqColumns columns) {
    /** Both stages on the CPU (the Vector API kernels). */
    public static final GptqDevice CPU = new GptqDevice(InverseFactorSolver.CPU, CpuGptqColumns.DEFAULT);

    public GptqDevice {
        Objects.requireNonNull(solver, "solver");
        Objects.requireNonNull(columns, "columns");
    }

    @Override
    public String toString() {
        return "solve " + solver + ", columns " + columns;
    }
}
