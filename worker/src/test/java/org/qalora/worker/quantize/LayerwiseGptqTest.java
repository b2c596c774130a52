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
import java.util.EnumMap;
import java.util.Map;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LayerWeights;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.Projection;

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
            LayerwiseGptq.Result result = LayerwiseGptq.run(new ModelParts(source, llama, backend), config, data,
                    new PrintWriter(new StringWriter()),
                    (prefix, dense, out, in, hessian, quantized) -> {
                        QuantizedMatrix baseline = rtn.quantize(dense, out, in, prefix);
                        double gptq = outputError(dense, quantized.dequantize(), out, in, hessian);
                        double plain = outputError(dense, baseline.dequantize(), out, in, hessian);
                        assertTrue(gptq < plain, prefix + ": GPTQ " + gptq + " vs RTN " + plain);
                        assertEquals(8, hessian.sequences());
                        checked.add(prefix);
                    });
            assertFinalHiddenMatchesAFullForward(source, llama, backend, result, data);
        }
        assertEquals(14, checked.size());
    }

    /**
     * The layer-at-a-time hidden states (each layer run on the cached outputs of the previous one) equal the
     * worker's ordinary whole-model forward of the quantized model.
     */
    private static void assertFinalHiddenMatchesAFullForward(Checkpoint source, LlamaConfig llama, CpuBackend be,
                                                             LayerwiseGptq.Result result, CalibrationData data)
            throws IOException {
        int v = llama.vocabSize();
        int h = llama.hiddenSize();
        List<LayerWeights> layers = new ArrayList<>();
        for (int l = 0; l < llama.numHiddenLayers(); l++) {
            Map<Projection, LinearWeight> proj = new EnumMap<>(Projection.class);
            for (Projection p : Projection.values()) {
                proj.put(p, be.quantizedWeight(result.quantized().get(p.prefix(l))));
            }
            String n = "model.layers." + l + ".";
            layers.add(new LayerWeights(be.upload(source.floats(n + "input_layernorm.weight"), h),
                    be.upload(source.floats(n + "post_attention_layernorm.weight"), h), proj));
        }
        LlamaModel model = new LlamaModel(ModelParts.dims(llama), be, be.upload(source.floats("model.embed_tokens.weight"), v, h),
                layers, be.upload(source.floats("model.norm.weight"), h),
                be.denseWeight(be.upload(source.floats("lm_head.weight"), v, h)), Map.of(), null);
        ActivationPlan plan = new ActivationPlan(model, null, 1, data.seqLen(), false, false);
        for (int s = 0; s < data.sequences(); s++) {
            LlamaPass.forward(model, null, plan, data.ids()[s], 0L, null);
            float[] expected = be.download(plan.residual[llama.numHiddenLayers()]); // [T, H]
            float[] actual = result.finalHidden()[s];
            for (int j = 0; j < expected.length; j++) {
                assertEquals(expected[j], actual[j], 1e-5f * (1 + Math.abs(expected[j])), "sequence " + s + " element " + j);
            }
        }
    }
}
