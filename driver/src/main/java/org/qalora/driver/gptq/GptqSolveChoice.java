package org.qalora.driver.gptq;

import org.apache.spark.SparkConf;
import org.qalora.quant.cuda.CudaGptqSolve;
import org.qalora.quant.quantizer.GptqSolve;

/**
 * {@code train --gptq-solve} decided once, on the driver, before any GPTQ work: the result travels in
 * {@link org.qalora.worker.quantize.CalibrationWork} to every solve task, so all projections of a run are solved
 * on the same kind of device (the GPU's factor agrees with the CPU's within 1e-9, not bit for bit, and distributed GPTQ
 * equals single-process GPTQ bit for bit only for the same solve device).
 */
public final class GptqSolveChoice {
    /** The Spark setting that gives each task GPUs (as the training slots use them). */
    static final String TASK_GPUS = "spark.task.resource.gpu.amount";

    private GptqSolveChoice() {}

    /**
     * {@code cpu} and {@code gpu} as asked; {@code auto} is {@code gpu} when the Spark tasks are given GPUs
     * ({@value #TASK_GPUS} above 0) or, in local mode (tasks in this JVM), when GPU 0 here can run cuSOLVER; else
     * {@code cpu}. {@code gpu} in local mode on a machine whose GPU cannot run the solve is refused here, with the
     * reason, rather than in the first solve task after the first layer's calibration.
     */
    public static GptqSolve resolve(String requested, SparkConf conf, boolean local) {
        double taskGpus;
        try {
            taskGpus = Double.parseDouble(conf.get(TASK_GPUS, "0"));
        } catch (NumberFormatException e) {
            taskGpus = 0;  // Spark itself refuses a malformed amount when it schedules
        }
        String r = GptqSolve.checkRequested(requested, "--gptq-solve");
        String why = local && !r.equals("cpu") ? CudaGptqSolve.unusableReason(0) : null;
        GptqSolve solve = GptqSolve.resolve(r, taskGpus > 0 || local && why == null, "--gptq-solve");
        if (solve == GptqSolve.GPU && local && why != null) {
            throw new IllegalArgumentException("--gptq-solve gpu: this machine's GPU cannot run the solve (" + why
                    + "); use --gptq-solve cpu or auto");
        }
        return solve;
    }
}
