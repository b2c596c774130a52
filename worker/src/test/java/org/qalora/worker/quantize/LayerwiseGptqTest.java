package org.qalora.worker.quantize;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.quantizer.Hessian;
import org.qalora.quant.quantizer.RtnQuantizer;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;

/**
 * Issue 2's GPTQ criterion on the real fixture model: for every projection, on the activations the model itself
 * produces for the calibration tokens (with earlier layers already quantized), GPTQ's output error
 * {@code ||W X - Wq X||} is lower than RTN's.
 */
class LayerwiseGptqTest {
    @TempDir
    Path dir;

    /** {@code ||(W - Wq) X^T||_F^2 = (N/2) * sum_o d_o^T H d_o} with {@code d = W - Wq}; the N/2 factor is common. */
    static double outputError(float[] w, float[] wq, int out, int in, Hessian h) {
        double[] hm = h.matrix();
        double total = 0;
        double[] d = new double[in];
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                d[i] = (double) w[o * in + i] - wq[o * in + i];
            }
            for (int a = 0; a < in; a++) {
                double s = 0;
                for (int b = 0; b < in; b++) {
                    s += hm[a * in + b] * d[b];
                }
                total += d[a] * s;
            }
        }
        return Math.sqrt(total);
    }

    @ParameterizedTest(name = "{0}-bit")
    @ValueSource(ints = {2, 4})
    void gptqBeatsRtnOnEveryProjectionOfTheFixture(int bits) throws IOException {
        CalibrationData data = CalibrationData.read(QuantizeCommandTest.calibrationFile(dir, 8, 48, bits).toString(), 512,
                HadoopPaths.defaults());
        GptqConfig config = GptqConfig.of(bits, 32);
        List<String> checked = new ArrayList<>();
        try (Checkpoint source = Checkpoint.open(Fixtures.tinyLlama().toString());
             CpuBackend backend = new CpuBackend(2)) {
            LlamaConfig llama = source.config();
            RtnQuantizer rtn = new RtnQuantizer(bits, 32, false);
            LayerwiseGptq.run(new ModelParts(source, llama, backend), config, data, new PrintWriter(new StringWriter()),
                    (prefix, dense, out, in, hessian, result) -> {
                        QuantizedMatrix baseline = rtn.quantize(dense, out, in, prefix);
                        double gptq = outputError(dense, result.dequantize(), out, in, hessian);
                        double plain = outputError(dense, baseline.dequantize(), out, in, hessian);
                        assertTrue(gptq < plain, prefix + ": GPTQ " + gptq + " vs RTN " + plain);
                        assertEquals(8, hessian.sequences());
                        checked.add(prefix);
                    });
        }
        assertEquals(14, checked.size());
    }
}
