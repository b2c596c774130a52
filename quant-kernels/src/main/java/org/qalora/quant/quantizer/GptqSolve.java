package org.qalora.quant.quantizer;

import java.util.Locale;
import org.qalora.quant.cuda.CudaGptqColumns;
import org.qalora.quant.cuda.CudaGptqSolve;

/**
 * Where GPTQ's inverse-Hessian factor ({@link InverseFactorSolver}) is computed: {@code cpu} (the blocked Vector API
 * solve) or {@code gpu} (cuSOLVER). The column stage ({@link GptqColumns}) follows it: on the GPU with {@code gpu}
 * ({@link CudaGptqColumns}), on the CPU with {@code cpu}; the two column stages give the same bits, so only the solve
 * decides what a run computes. The option that picks it ({@code --gptq-solve}) also takes {@code auto}, which
 * {@link #resolve} turns into one of the two <em>once</em>, before any solve: the two give results that agree to
 * within 1e-9 (relative; the tested bound) but not bit for bit, so every projection of a run must be solved on the same kind of device for
 * distributed GPTQ to equal single-process GPTQ bit for bit (and a rerun to equal the first run).
 */
public enum GptqSolve {
    CPU, GPU;

    /** The option's words. */
    public static final String CHOICES = "auto|cpu|gpu";

    /**
     * {@code cpu} or {@code gpu} as given; {@code auto} is {@code gpu} when {@code gpuPresent} (the caller's test:
     * cuSOLVER usable here, or the Spark tasks are given GPUs), else {@code cpu}.
     *
     * @param what names the option in the error ({@code --gptq-solve})
     */
    public static GptqSolve resolve(String requested, boolean gpuPresent, String what) {
        String r = checkRequested(requested, what);
        return switch (r) {
            case "cpu" -> CPU;
            case "gpu" -> GPU;
            default -> gpuPresent ? GPU : CPU;
        };
    }

    /** {@code auto}, {@code cpu} or {@code gpu}, normalised; anything else is an IllegalArgumentException. */
    public static String checkRequested(String requested, String what) {
        String r = requested == null ? "cpu" : requested.trim().toLowerCase(Locale.ROOT);
        if (!r.equals("auto") && !r.equals("cpu") && !r.equals("gpu")) {
            throw new IllegalArgumentException(what + " must be auto, cpu or gpu (where GPTQ's inverse-Hessian solve"
                    + " runs), got '" + requested + "'");
        }
        return r;
    }

    /**
     * The solver on this machine: the CPU's, or cuSOLVER on GPU {@code gpuOrdinal}. A GPU that was chosen but is
     * unusable here is an IllegalStateException with the reason; there is no silent fallback to the CPU, which would
     * mix the two kinds of solve in one run.
     */
    public InverseFactorSolver solver(int gpuOrdinal) {
        if (this == CPU) {
            return InverseFactorSolver.CPU;
        }
        requireUsable(gpuOrdinal, "it", CudaGptqSolve.unusableReason(gpuOrdinal));
        return new CudaGptqSolve(gpuOrdinal);
    }

    /**
     * The column stage on this machine: the CPU's ({@link CpuGptqColumns#DEFAULT}) or {@link CudaGptqColumns} on GPU
     * {@code gpuOrdinal}; a GPU that was chosen but cannot run it is an IllegalStateException with the reason.
     */
    public GptqColumns columns(int gpuOrdinal) {
        if (this == CPU) {
            return CpuGptqColumns.DEFAULT;
        }
        requireUsable(gpuOrdinal, "its column stage", CudaGptqColumns.unusableReason(gpuOrdinal));
        return new CudaGptqColumns(gpuOrdinal);
    }

    /** A GPU chosen for a GPTQ stage that it cannot run ({@code why} non-null) fails with the reason. */
    private static void requireUsable(int gpuOrdinal, String stage, String why) {
        if (why != null) {
            throw new IllegalStateException("the GPTQ solve was set to gpu but GPU " + gpuOrdinal + " cannot run "
                    + stage + ": " + why + "; use --gptq-solve cpu (every GPTQ stage of a run must use the same kind"
                    + " of device)");
        }
    }

    /** Both stages on this machine ({@link #solver} and {@link #columns}), checked before any work. */
    public GptqDevice device(int gpuOrdinal) {
        return new GptqDevice(solver(gpuOrdinal), columns(gpuOrdinal));
    }

    /**
     * Why GPU {@code ordinal} cannot run GPTQ's GPU stages (no driver or device, no cuSOLVER, no PTX in the jar), or
     * null when it can run both.
     */
    public static String gpuUnusableReason(int ordinal) {
        String why = CudaGptqSolve.unusableReason(ordinal);
        return why != null ? why : CudaGptqColumns.unusableReason(ordinal);
    }

    /** {@code cpu} or {@code gpu}, as the option spells it. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
