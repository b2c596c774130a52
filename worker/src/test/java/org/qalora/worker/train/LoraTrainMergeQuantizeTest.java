package org.qalora.worker.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.Projection;
import org.qalora.worker.quantize.ModelQuantizer;

/**
 * The LoRA baseline end to end on the CPU, on the fixture's float (bf16) model: LoRA training steps lower the loss,
 * the adapter merges into float32 weights ({@code W + s B A}) whose logits equal the base + adapter model's, and
 * RTN quantization of the merged model ("LoRA, then quantize") gives a GPTQ model that loads and stays close to it.
 */
class LoraTrainMergeQuantizeTest {
    @TempDir
    Path tmp;

    @Test
    void loraTrainsMergesIntoFloatWeightsAndQuantizes() throws Exception {
        try (CpuBackend be = new CpuBackend(2); SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            LlamaModel model = LlamaModel.load(Fixtures.tinyLlama().toString(), be);
            int[] ids = toInts(ref.longs("input_ids")), labels = toInts(ref.longs("labels"));
            MicroBatch batch = new MicroBatch(2, 24, ids, labels);
            QaloraConfig cfg = QaloraConfig.lora(8, 16, 0.05);
            TrainingConfig tc = TrainingConfig.defaults(cfg.pooling(), 8).withLearningRate(1e-2);
            assertEquals(TrainingConfig.LORA_LEARNING_RATE, TrainingConfig.defaults(cfg.pooling(), 8).learningRate());
            List<List<MicroBatch>> steps = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                steps.add(List.of(batch));
            }
            TrainResult r = new LocalTrainer(model, cfg, tc).run(AdapterState.initial(model, cfg, 3), steps, 5);
            assertTrue(r.stepLosses()[7] < r.stepLosses()[0] - 0.2, java.util.Arrays.toString(r.stepLosses()));

            String merged = tmp.resolve("merged").toString();
            Merger.Report report = Merger.merge(model, r.state(), merged);
            assertEquals(14, report.mergedProjections());
            assertTrue(report.relativeLogitError() < 1e-5, "probe error " + report.relativeLogitError());
            LlamaConfig mc = LlamaConfig.read(merged);
            assertFalse(mc.isQuantized());
            assertEquals("float32", mc.json().get("dtype").asText());
            try (Checkpoint ck = Checkpoint.open(merged)) {
                assertEquals(DType.F32, ck.info("model.layers.1.mlp.down_proj.weight").dtype());
                assertEquals(DType.BF16, ck.info("model.embed_tokens.weight").dtype(), "other tensors keep their dtype");
            }
            assertTrue(Files.exists(tmp.resolve("merged/generation_config.json")), "side files are copied");

            // the merged float model (no adapter) against the base + adapter, on the reference batch
            LlamaModel mergedModel = LlamaModel.load(merged, be);
            QaloraConfig evalCfg = QaloraConfig.lora(8, 16, 0.0);
            float[] adapterLogits = logits(model, QaloraAdapter.create(model, evalCfg, r.state().weightMap(), false),
                    evalCfg, ids);
            float[] mergedLogits = logits(mergedModel, null, null, ids);
            assertTrue(MergeCheck.relativeError(mergedLogits, adapterLogits) < 1e-5);
            assertTrue(MergeCheck.relativeError(logits(model, null, null, ids), adapterLogits) > 1e-3,
                    "the adapter changed the model");

            // LoRA, then quantize: RTN 4-bit g32 of the merged model loads as GPTQ and stays near it
            String quantized = tmp.resolve("quantized").toString();
            GptqConfig gptq = GptqConfig.of(4, 32);
            StringWriter log = new StringWriter();
            try (Checkpoint source = Checkpoint.open(merged)) {
                var matrices = ModelQuantizer.quantize(source, mc, gptq, ModelQuantizer.Method.RTN, null, null,
                        new PrintWriter(log));
                ModelQuantizer.write(source, mc, gptq, matrices, quantized, ModelQuantizer.DEFAULT_MAX_SHARD_BYTES,
                        org.qalora.quant.io.HadoopPaths.defaults());
            }
            LlamaModel q = LlamaModel.load(quantized, be);
            assertTrue(q.isQuantized());
            double err = MergeCheck.relativeError(logits(q, null, null, ids), mergedLogits);
            assertTrue(err > 0 && err < 0.2, "4-bit RTN of the merged model: relative logit error " + err);

            // the PEFT adapter of a LoRA run reads back as plain LoRA, which a GPTQ base refuses
            String adapterDir = tmp.resolve("adapter").toString();
            r.state().writePeft(adapterDir, Fixtures.tinyLlama().toString());
            PeftAdapter peft = PeftAdapter.read(adapterDir);
            assertTrue(peft.config().plainLora());
            assertEquals(8L * 128, peft.weights().get(PeftKeys.a(0, Projection.Q)).length, "A [r, in]");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Merger.merge(Fixtures.tinyLlamaGptq().toString(), adapterDir, tmp.resolve("no").toString()));
            assertTrue(e.getMessage().contains("plain LoRA (--method lora) trains a float base"), e.getMessage());
            assertFalse(Files.exists(tmp.resolve("no")));
        }
    }

    private static float[] logits(LlamaModel m, QaloraAdapter a, QaloraConfig cfg, int[] ids) {
        ActivationPlan plan = new ActivationPlan(m, cfg, 2, 24, false, false);
        LlamaPass.forward(m, a, plan, ids, 0, null);
        return LlamaPass.logits(m, plan);
    }

    private static int[] toInts(long[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            o[i] = Math.toIntExact(a[i]);
        }
        return o;
    }
}
