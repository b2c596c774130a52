package org.qalora.driver.gptq;

import org.apache.spark.SparkConf;
import org.qalora.quant.quantizer.GptqSolve;
import org.qalora.worker.backend.Backends;

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
     * {@code cpu} and {@code gpu} as asked. {@code auto} follows the run's {@code --device}: {@code cpu} there is
     * {@code cpu} here (Spark may hand out GPU addresses that the run chose not to use); otherwise, in local mode (the
     * tasks run in this JVM) {@code gpu} when GPU 0 here can run cuSOLVER and the column kernels, and on a cluster
     * {@code gpu} when the tasks are given GPUs ({@value #TASK_GPUS} above 0) or {@code --device} names a GPU; else
     * {@code cpu}. An explicit
     * {@code gpu} in local mode on a machine whose GPU cannot run the solve is refused here, with the reason, rather
     * than in the first solve task after the first layer's calibration.
     *
     * @param device the run's requested {@code --device} ({@code auto}, {@code cpu}, {@code gpu}, {@code gpu:N})
     */
    public static GptqSolve resolve(String requested, String device, SparkConf conf, boolean local) {
        String r = GptqSolve.checkRequested(requested, "--gptq-solve");
        String d = Backends.checkRequested(device);
        if (r.equals("cpu") || r.equals("auto") && d.equals("cpu")) {
            return GptqSolve.CPU;
        }
        String why = local ? GptqSolve.gpuUnusableReason(0) : null;
        if (r.equals("gpu")) {
            if (why != null) {
                throw new IllegalArgumentException("--gptq-solve gpu: this machine's GPU cannot run the solve (" + why
                        + "); use --gptq-solve cpu or auto");
            }
            return GptqSolve.GPU;
        }
        boolean gpu = local ? why == null : taskGpus(conf) > 0 || !d.equals("auto");
        return gpu ? GptqSolve.GPU : GptqSolve.CPU;
    }

    private static double taskGpus(SparkConf conf) {
        try {
            return Double.parseDouble(conf.get(TASK_GPUS, "0"));
        } catch (NumberFormatException e) {
            return 0;  // Spark itself refuses a malformed amount when it schedules
        }
    }
}
