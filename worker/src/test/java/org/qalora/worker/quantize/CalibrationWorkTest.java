package org.qalora.worker.quantize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.cuda.CudaGptqSolve;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.quantizer.CpuGptqColumns;
import org.qalora.quant.quantizer.GptqDevice;
import org.qalora.quant.quantizer.GptqSolve;
import org.qalora.quant.quantizer.HessianSum;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.Projection;
import org.qalora.worker.quantize.CalibrationWork.HiddenFrom;

/**
 * Distributed GPTQ's task steps ({@link CalibrationWork}), run here in one JVM in a scrambled task order, with
 * different thread counts, and with the JVM's held hidden states dropped or their files deleted between stages (as
 * when a task lands on another executor or after an executor loss): the quantized projections equal single-process
 * GPTQ's ({@link LayerwiseGptq}) bit for bit. The Spark version of the same is the tests module's
 * {@code GptqOnClusterTest}. The property holds for each solve device ({@code --gptq-solve}): with the
 * inverse-Hessian factors and the column stage on the GPU (cuSOLVER, {@code CudaGptqColumns}) for both paths too; that
 * case is skipped where no GPU is usable. There, too, the whole model's GPTQ with the column stage on the GPU equals
 * the one with the column stage on the CPU, bit for bit (the same factors).
 */
class CalibrationWorkTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "solve on the {0}")
    @EnumSource(GptqSolve.class)
    void taskByTaskGptqEqualsSingleProcessGptqBitForBit(GptqSolve solve) throws IOException {
        if (solve == GptqSolve.GPU) {
            String why = GptqSolve.gpuUnusableReason(0);
            assumeTrue(why == null, () -> "GPU GPTQ solve unavailable, skipped: " + why);
        }
        int sequences = 11; // three chunks (4, 4, 3): the canonical sum adds three partials
        GptqConfig config = GptqConfig.of(2, 32);
        Path calibration = QuantizeCommandTest.calibrationFile(dir, sequences, 40, 3);
        HadoopPaths paths = HadoopPaths.defaults();
        Map<String, QuantizedMatrix> single;
        int layers;
        try (Checkpoint source = Checkpoint.open(Fixtures.tinyLlama().toString());
             CpuBackend backend = new CpuBackend(2)) {
            layers = source.config().numHiddenLayers();
            CalibrationData data = CalibrationData.read(calibration.toString(), source.config().vocabSize(), paths);
            single = LayerwiseGptq.run(new ModelParts(source, source.config(), backend), config, data,
                    new PrintWriter(new StringWriter()), null, solve.device(0)).quantized();
        }

        CalibrationWork work = new CalibrationWork(dir.resolve("work").toString(), Fixtures.tinyLlama().toString(),
                config, sequences, "test-" + System.nanoTime(), solve);
        Files.createDirectories(dir.resolve("work"));
        Files.copy(calibration, Path.of(work.calibrationFile()));
        int chunks = work.chunks();
        assertEquals(3, chunks);
        Map<HiddenFrom, Integer> from = new EnumMap<>(HiddenFrom.class);
        for (int l = 0; l < layers; l++) {
            for (int s = 0; s < work.stages().size(); s++) {
                if (l == 1 && s == 2) {
                    work.forget(); // as if every task of this stage landed on a fresh executor: read from files
                }
                if (l == 1 && s == 3) {
                    work.forget(); // and here the files are gone too: recomputed from layer 0's
                    for (int c = 0; c < chunks; c++) {
                        Files.delete(Path.of(work.hiddenFile(1, c)));
                    }
                }
                for (int c = chunks - 1; c >= 0; c--) { // any task order: each writes its own partial
                    from.merge(CalibrationWork.hessianTask(work, l, s, c, paths, 1 + c % 2), 1, Integer::sum);
                }
                for (Projection p : work.stages().get(s)) {
                    CalibrationWork.solveTask(work, l, s, p, paths, l == 0 ? null : "gpu:0");
                }
            }
        }
        assertTrue(from.get(HiddenFrom.MEMORY) > 0 && from.get(HiddenFrom.FILE) == chunks
                && from.get(HiddenFrom.COMPUTED) > 0, from.toString());
        assertEquals(layers * 7, single.size());
        for (Map.Entry<String, QuantizedMatrix> e : single.entrySet()) {
            QuantizedMatrix d = work.readProjection(e.getKey(), paths);
            assertArrayEquals(e.getValue().qweight(), d.qweight(), e.getKey() + " codes");
            assertArrayEquals(e.getValue().scales(), d.scales(), e.getKey() + " scales");
            assertArrayEquals(e.getValue().zeros(), d.zeros(), e.getKey() + " zeros");
        }
    }

    /**
     * The whole tiny model's GPTQ (every layer's inputs depend on the quantized layers before it), the factors from
     * cuSOLVER either way: the GPU column stage gives the CPU column stage's codes, scales and zeros.
     */
    @Test
    void theGpuColumnStageGivesTheCpuColumnStagesModel() throws IOException {
        String why = GptqSolve.gpuUnusableReason(0);
        assumeTrue(why == null, () -> "GPU GPTQ unavailable, skipped: " + why);
        GptqDevice gpu = GptqSolve.GPU.device(0);
        GptqDevice cpuColumns = new GptqDevice(gpu.solver(), CpuGptqColumns.DEFAULT);
        for (GptqConfig config : new GptqConfig[] {GptqConfig.of(2, 32), GptqConfig.of(4, 64)}) {
            Map<String, QuantizedMatrix> onGpu = singleProcess(config, gpu);
            Map<String, QuantizedMatrix> onCpu = singleProcess(config, cpuColumns);
            assertEquals(onCpu.keySet(), onGpu.keySet());
            for (Map.Entry<String, QuantizedMatrix> e : onCpu.entrySet()) {
                QuantizedMatrix g = onGpu.get(e.getKey());
                assertArrayEquals(e.getValue().qweight(), g.qweight(), e.getKey() + " codes");
                assertArrayEquals(e.getValue().scales(), g.scales(), e.getKey() + " scales");
                assertArrayEquals(e.getValue().zeros(), g.zeros(), e.getKey() + " zeros");
            }
        }
    }

    private Map<String, QuantizedMatrix> singleProcess(GptqConfig config, GptqDevice device) throws IOException {
        Path calibration = QuantizeCommandTest.calibrationFile(dir, 6, 40, 5);
        try (Checkpoint source = Checkpoint.open(Fixtures.tinyLlama().toString());
             CpuBackend backend = new CpuBackend(2)) {
            CalibrationData data = CalibrationData.read(calibration.toString(), source.config().vocabSize(),
                    HadoopPaths.defaults());
            return LayerwiseGptq.run(new ModelParts(source, source.config(), backend), config, data,
                    new PrintWriter(new StringWriter()), null, device).quantized();
        }
    }

    /** A solve task told to use the GPU where none is usable fails with the reason, never solving on the CPU. */
    @Test
    void aGpuSolveTaskWithoutAGpuFailsWithTheReason() {
        String why = CudaGptqSolve.unusableReason(0);
        assumeTrue(why != null, "a GPU is usable here: nothing to refuse");
        CalibrationWork work = new CalibrationWork(dir.resolve("work").toString(), Fixtures.tinyLlama().toString(),
                GptqConfig.of(4, 32), 4, "test-" + System.nanoTime(), GptqSolve.GPU);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> CalibrationWork.solveTask(work, 0, 0,
                Projection.Q, HadoopPaths.defaults(), "cpu"));
        assertTrue(e.getMessage().contains("set to gpu but GPU 0 cannot run it: " + why), e.getMessage());
        assertTrue(e.getMessage().contains("--gptq-solve cpu"), e.getMessage());
    }

    @Test
    void theChunkingDependsOnTheSequenceCountOnly() {
        assertEquals(1, CalibrationChunks.count(1));
        assertEquals(1, CalibrationChunks.count(4));
        assertEquals(2, CalibrationChunks.count(5));
        assertEquals(16, CalibrationChunks.count(128));
        assertEquals(16, CalibrationChunks.count(70));
        // 70 sequences: six chunks of 5, then ten of 4; contiguous and complete.
        assertEquals(0, CalibrationChunks.start(70, 0));
        assertEquals(5, CalibrationChunks.start(70, 1));
        assertEquals(30, CalibrationChunks.start(70, 6));
        assertEquals(34, CalibrationChunks.start(70, 7));
        assertEquals(70, CalibrationChunks.start(70, 16));
        assertEquals(128, CalibrationChunks.start(128, 16));
    }

    /**
     * A partial Hessian crosses JVMs exactly; and the order is part of the result: the same sequences summed as one
     * chunk or as two chunk partials can differ in the last bits, which is why both paths share one order.
     */
    @Test
    void hessianSumsRoundTripExactlyAndTheirOrderMatters() throws IOException {
        int columns = 32;
        int tokens = 50;
        Random rnd = new Random(11);
        float[][] xs = new float[6][tokens * columns];
        for (float[] x : xs) {
            for (int j = 0; j < x.length; j++) {
                x[j] = (float) rnd.nextGaussian();
            }
        }
        // H[0, 0]: sequence 0 adds 2^54 (ulp 4), the other five 1 each. Added one by one, each 1 rounds away (2^54);
        // as chunks {0, 1, 2} and {3, 4, 5}, the second chunk's 3 survives (2^54 + 4).
        for (int t = 0; t < tokens; t++) {
            xs[0][t * columns] = t == 0 ? (float) Math.scalb(1.0, 27) : 0f;
            for (int s = 1; s < 6; s++) {
                xs[s][t * columns] = t == 0 ? 1f : 0f;
            }
        }
        HessianSum one = new HessianSum(columns);
        for (float[] x : xs) {
            one.add(x, tokens);
        }
        HessianSum twoChunks = new HessianSum(columns);
        for (int c = 0; c < 2; c++) {
            HessianSum partial = new HessianSum(columns);
            for (int s = 3 * c; s < 3 * c + 3; s++) {
                partial.add(xs[s], tokens);
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            partial.write(bytes);
            twoChunks.plus(HessianSum.read(new ByteArrayInputStream(bytes.toByteArray()), "partial " + c));
        }
        assertEquals(6, twoChunks.sequences());
        double[] a = one.toHessian().matrix();
        double[] b = twoChunks.toHessian().matrix();
        assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b),
                "summing in another grouping changes some bits");
        for (int j = 0; j < a.length; j++) {
            assertEquals(a[j], b[j], 1e-12 * Math.abs(a[j]) + 1e-300);
        }
    }
}
