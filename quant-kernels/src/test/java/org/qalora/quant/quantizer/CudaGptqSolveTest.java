package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.CudaGptqSolve;

/**
 * GPTQ's inverse-Hessian factor on the GPU ({@link CudaGptqSolve}, cuSOLVER) against the CPU solve
 * ({@link InverseFactorSolver#CPU}, bit-identical to {@code CholeskyMath}): the factor within
 * {@link CudaGptqSolve#CPU_AGREEMENT} at sizes that are and are not multiples of cuSOLVER's and our block sizes,
 * 4096 (a LLaMA-7B attention input) included, dead inputs included; the same bits on a rerun; a matrix that is not
 * positive definite refused with the CPU's message and column; a whole GPTQ of a small layer giving (nearly) the
 * same codes. The GPU cases are skipped, with the reason, where no GPU with cuSOLVER is usable (CI); the tests of the
 * bound and of the option run everywhere.
 */
class CudaGptqSolveTest {
    private static void requireGpu() {
        String why = CudaGptqSolve.unusableReason(0);
        assumeTrue(why == null, () -> "GPU GPTQ solve unavailable, skipped: " + why);
    }

    @ParameterizedTest(name = "n = {0}")
    @ValueSource(ints = {1, 2, 7, 64, 65, 127, 130, 333, 1000, 4096})
    void factorMatchesTheCpuSolve(int n) {
        requireGpu();
        int[] dead = n >= 130 ? new int[] {3, n / 2, n - 1} : new int[0];
        double[] h = BlockedCholeskyTest.dampedHessian(n, Math.max(8, Math.min(n, 256)), n * 17L + 3, dead);
        double[] copy = h.clone();
        double[] cpu = InverseFactorSolver.CPU.upperCholeskyOfInverse(h, n, "w");
        CudaGptqSolve gpu = new CudaGptqSolve(0);
        double[] first = gpu.upperCholeskyOfInverse(h, n, "w");
        assertArrayEquals(copy, h, "the input must not be modified");
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                assertEquals(0.0, first[i * n + j], "U[" + i + "][" + j + "] is below the diagonal: it must be 0");
            }
        }
        double rel = CudaGptqSolve.relativeDifference(first, cpu);
        System.out.printf(Locale.ROOT, "GPU gptq solve n=%d: max relative difference to the CPU factor %.2e (bound %.0e)%n",
                n, rel, CudaGptqSolve.CPU_AGREEMENT);
        assertTrue(rel <= CudaGptqSolve.CPU_AGREEMENT, () -> "n " + n + ": the GPU factor differs from the CPU's by "
                + rel + " (relative), over the bound " + CudaGptqSolve.CPU_AGREEMENT);
        double[] again = gpu.upperCholeskyOfInverse(h, n, "w");
        assertArrayEquals(first, again, "a rerun on the same GPU must give the same bits");
    }

    @Test
    void notPositiveDefiniteIsRefusedAtTheCpusColumn() {
        requireGpu();
        int n = 300;
        double[] h = BlockedCholeskyTest.dampedHessian(n, 256, 5);
        // Column 200 gets a diagonal that its leading minor cannot reach: the first failing pivot is column 200.
        h[200 * n + 200] = -1;
        IllegalStateException cpu = assertThrows(IllegalStateException.class,
                () -> InverseFactorSolver.CPU.upperCholeskyOfInverse(h, n, "model.layers.3.mlp.down_proj"));
        IllegalStateException gpu = assertThrows(IllegalStateException.class,
                () -> new CudaGptqSolve(0).upperCholeskyOfInverse(h, n, "model.layers.3.mlp.down_proj"));
        assertTrue(cpu.getMessage().contains("not positive definite at column 200"), cpu.getMessage());
        assertTrue(gpu.getMessage().startsWith("model.layers.3.mlp.down_proj: the damped Hessian is not positive"
                + " definite at column 200"), gpu.getMessage());
        assertTrue(gpu.getMessage().contains("damp_percent"), gpu.getMessage());
        double[] nan = BlockedCholeskyTest.dampedHessian(n, 256, 5);
        nan[10 * n + 10] = Double.NaN;
        IllegalStateException notFinite = assertThrows(IllegalStateException.class,
                () -> new CudaGptqSolve(0).upperCholeskyOfInverse(nan, n, "w"));
        assertTrue(notFinite.getMessage().contains("not positive definite"), notFinite.getMessage());
    }

    /**
     * A whole GPTQ (4-bit, group 32, the paper's settings) of a {@code [512, 1024]} layer: the factor is rounded to
     * float32 before use, so the two solves give the same float32 factor nearly everywhere, and a code can differ only
     * where a weight sits within a rounding error of a quantization boundary (and then the row's later columns, fed
     * another error, may follow). Emulated on the CPU with this very layer (2026-12-06): the CPU factor with relative
     * Gaussian noise of 1e-10 or 1e-6 on every entry changed 0 of 524,288 codes, plain and act-order; noise of 1e-4
     * changed 0.8%. So the bound, 1e-4 of the codes, passes any factor within {@link CudaGptqSolve#CPU_AGREEMENT}
     * with room, and fails a factor that is wrong in its fourth digit. The measured fraction is printed.
     */
    @ParameterizedTest(name = "act-order {0}")
    @ValueSource(booleans = {false, true})
    void gptqOfASmallLayerGivesTheCpuSolvesCodes(boolean actOrder) {
        requireGpu();
        int out = 512;
        int in = 1024;
        Random rnd = new Random(11);
        float[] w = new float[out * in];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian() * 0.02f;
        }
        Hessian h = new Hessian(in);
        h.add(GptqQuantizerTest.activations(512, in, 21), 512, 1);
        GptqQuantizer cpuQuantizer = new GptqQuantizer(4, 32, false, actOrder, actOrder, 0.01);
        GptqQuantizer gpuQuantizer = cpuQuantizer.withSolver(GptqSolve.GPU.solver(0));
        QuantizedMatrix cpu = cpuQuantizer.quantize(w, out, in, h, "w");
        QuantizedMatrix gpu = gpuQuantizer.quantize(w, out, in, h, "w");
        int[] a = cpu.codes();
        int[] b = gpu.codes();
        int differ = (int) java.util.stream.IntStream.range(0, a.length).filter(i -> a[i] != b[i]).count();
        double fraction = differ / (double) a.length;
        System.out.printf(Locale.ROOT, "GPU gptq solve, GPTQ 4-bit g32 of [%d, %d]%s: %d of %d codes differ from the CPU"
                + " solve's (%.2e)%n", out, in, actOrder ? " act-order" : "", differ, a.length, fraction);
        assertTrue(fraction <= 1e-4, () -> differ + " of " + a.length + " codes differ: more than rounding explains");
    }

    // ---- everywhere, GPU or not ----------------------------------------------------------------------------------

    /** The bound can fail: it passes float64 reordering noise and rejects one wrong entry or a NaN. */
    @Test
    void theAgreementBoundAcceptsRoundingAndRejectsAWrongEntry() {
        int n = 200;
        double[] u = InverseFactorSolver.CPU.upperCholeskyOfInverse(BlockedCholeskyTest.dampedHessian(n, 256, 9), n, "w");
        Random rnd = new Random(3);
        double[] reordered = u.clone();
        for (int i = 0; i < reordered.length; i++) {
            reordered[i] *= 1 + 64 * Math.ulp(1.0) * rnd.nextGaussian();  // what another summation order does
        }
        assertTrue(CudaGptqSolve.relativeDifference(reordered, u) <= CudaGptqSolve.CPU_AGREEMENT);
        double max = 0;
        int at = 0;
        for (int i = 0; i < u.length; i++) {
            if (Math.abs(u[i]) > max) {
                max = Math.abs(u[i]);
                at = i;
            }
        }
        double[] wrong = u.clone();
        wrong[at + 1] += 1e-8 * max;   // one entry off by 1e-8 of the largest: 10x the bound
        assertTrue(CudaGptqSolve.relativeDifference(wrong, u) > CudaGptqSolve.CPU_AGREEMENT);
        double[] nan = u.clone();
        nan[n * n - 1] = Double.NaN;
        assertTrue(!(CudaGptqSolve.relativeDifference(nan, u) <= CudaGptqSolve.CPU_AGREEMENT));
    }

    @Test
    void theOptionResolvesAutoOnceAndRefusesOtherWords() {
        assertEquals(GptqSolve.GPU, GptqSolve.resolve("auto", true, "--gptq-solve"));
        assertEquals(GptqSolve.CPU, GptqSolve.resolve(" AUTO ", false, "--gptq-solve"));
        assertEquals(GptqSolve.CPU, GptqSolve.resolve(null, false, "--gptq-solve"));
        assertEquals(GptqSolve.CPU, GptqSolve.resolve("cpu", true, "--gptq-solve"));
        assertEquals(GptqSolve.GPU, GptqSolve.resolve("gpu", false, "--gptq-solve"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GptqSolve.resolve("cuda", true, "--gptq-solve"));
        assertEquals("--gptq-solve must be auto, cpu or gpu (where GPTQ's inverse-Hessian solve runs), got 'cuda'",
                e.getMessage());
        assertEquals(InverseFactorSolver.CPU, GptqSolve.CPU.solver(0));
    }

    /** Without a usable GPU, asking for the GPU solve fails at once with the reason, never falling back to the CPU. */
    @Test
    void gpuSolveWithoutAGpuIsRefusedWithTheReason() {
        String why = CudaGptqSolve.unusableReason(0);
        assumeTrue(why != null, "a GPU with cuSOLVER is usable here: nothing to refuse");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> GptqSolve.GPU.solver(0));
        assertTrue(e.getMessage().startsWith("the GPTQ solve was set to gpu but GPU 0 cannot run it: " + why),
                e.getMessage());
        assertTrue(e.getMessage().contains("--gptq-solve cpu"), e.getMessage());
    }
}
