package org.qalora.driver.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;
import org.qalora.quant.cuda.CudaGptqSolve;
import org.qalora.quant.quantizer.GptqSolve;

/** {@code train --gptq-solve}: decided once on the driver, from --device and where the tasks run, never per task. */
class GptqSolveChoiceTest {
    private static SparkConf taskGpus(String amount) {
        SparkConf conf = new SparkConf(false);
        return amount == null ? conf : conf.set(GptqSolveChoice.TASK_GPUS, amount);
    }

    @Test
    void autoFollowsTheDeviceAndTheTasksGpusOnAClusterAndExplicitChoicesStand() {
        assertEquals(GptqSolve.GPU, GptqSolveChoice.resolve("auto", "auto", taskGpus("1"), false));
        assertEquals(GptqSolve.GPU, GptqSolveChoice.resolve("auto", "auto", taskGpus("0.5"), false));
        assertEquals(GptqSolve.CPU, GptqSolveChoice.resolve("auto", "auto", taskGpus(null), false));
        assertEquals(GptqSolve.CPU, GptqSolveChoice.resolve("auto", "auto", taskGpus("0"), false));
        assertEquals(GptqSolve.GPU, GptqSolveChoice.resolve("auto", "gpu:1", taskGpus(null), false));
        // --device cpu: the run chose not to use the GPUs Spark hands out (TrainOnClusterTest's fake ones).
        assertEquals(GptqSolve.CPU, GptqSolveChoice.resolve("auto", "cpu", taskGpus("1"), false));
        assertEquals(GptqSolve.CPU, GptqSolveChoice.resolve("auto", "cpu", taskGpus(null), true));
        assertEquals(GptqSolve.CPU, GptqSolveChoice.resolve("cpu", "gpu", taskGpus("1"), false));
        // On a cluster the driver cannot see the executors' GPUs: an explicit gpu is taken as said (a task without one
        // then fails with the reason, CalibrationWorkTest).
        assertEquals(GptqSolve.GPU, GptqSolveChoice.resolve("gpu", "cpu", taskGpus(null), false));
        assertEquals(GptqSolve.CPU, GptqSolveChoice.resolve("cpu", "auto", taskGpus(null), true));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GptqSolveChoice.resolve("fast", "auto", taskGpus(null), true));
        assertTrue(e.getMessage().startsWith("--gptq-solve must be auto, cpu or gpu"), e.getMessage());
    }

    /** Local mode: the tasks run in this JVM, so this machine's GPU decides auto, and a missing one refuses gpu early. */
    @Test
    void localModeLooksAtThisMachinesGpu() {
        String why = CudaGptqSolve.unusableReason(0);
        assertEquals(why == null ? GptqSolve.GPU : GptqSolve.CPU,
                GptqSolveChoice.resolve("auto", "auto", taskGpus(null), true));
        assertEquals(why == null ? GptqSolve.GPU : GptqSolve.CPU,
                GptqSolveChoice.resolve("auto", "gpu", taskGpus(null), true), "local: only a usable GPU makes auto gpu");
        assumeTrue(why != null, "a GPU is usable here: gpu is accepted");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GptqSolveChoice.resolve("gpu", "auto", taskGpus(null), true));
        assertTrue(e.getMessage().contains("this machine's GPU cannot run the solve (" + why + ")"), e.getMessage());
    }
}
