package org.qalora.worker.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;

/**
 * The worker pipeline end to end on the fixture GPTQ model: fresh adapter, training steps (state saved and resumed
 * in between), PEFT adapter written and read back, merge, and the merged model's logits against the adapter's.
 */
class TrainMergeRoundTripTest {
    @TempDir
    Path tmp;

    @Test
    void trainSaveResumeMergeEvaluate() throws Exception {
        try (CpuBackend be = new CpuBackend(2); SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            LlamaModel model = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
            int[] ids = toInts(ref.longs("input_ids")), labels = toInts(ref.longs("labels"));
            MicroBatch row0 = new MicroBatch(1, 24, java.util.Arrays.copyOf(ids, 24), java.util.Arrays.copyOf(labels, 24));
            MicroBatch row1 = new MicroBatch(1, 24, java.util.Arrays.copyOfRange(ids, 24, 48),
                    java.util.Arrays.copyOfRange(labels, 24, 48));
            QaloraConfig cfg = QaloraConfig.allProjections(8, 16, 32, Pooling.MEAN, 0.05);
            TrainingConfig tc = new TrainingConfig(5e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, Schedule.COSINE, 2, 12, true);
            List<List<MicroBatch>> six = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                six.add(List.of(row0, row1)); // two micro-batches accumulated per step
            }
            LocalTrainer trainer = new LocalTrainer(model, cfg, tc);
            TrainResult first = trainer.run(AdapterState.initial(model, cfg, 1), six, 9);
            String stateFile = tmp.resolve("state.safetensors").toString();
            AdapterStateFiles.write(first.state(), stateFile);
            TrainResult second = trainer.run(AdapterStateFiles.read(stateFile), six, 9);
            assertEquals(12, second.state().step());
            assertTrue(second.stepLosses()[5] < first.stepLosses()[0] - 0.2,
                    first.stepLosses()[0] + " -> " + second.stepLosses()[5]);

            Path adapterDir = tmp.resolve("adapter");
            second.state().writePeft(adapterDir.toString(), Fixtures.tinyLlamaGptq().toString());
            PeftAdapter peft = PeftAdapter.read(adapterDir.toString());
            assertEquals(cfg, peft.config());

            Merger.Report report = Merger.merge(model, second.state(), tmp.resolve("merged").toString());
            assertEquals(14, report.mergedProjections());
            assertTrue(report.relativeLogitError() < 1e-5, "probe error " + report.relativeLogitError());

            LlamaModel merged = LlamaModel.load(tmp.resolve("merged").toString(), be);
            ActivationPlan plan = new ActivationPlan(model, cfg, 2, 24, false, false);
            QaloraConfig evalCfg = new QaloraConfig(8, 16, 32, Pooling.MEAN, 0.0, cfg.targets());
            LlamaPass.forward(model, QaloraAdapter.create(model, evalCfg, peft.weights(), false), plan, ids, 0, null);
            float[] adapterLogits = LlamaPass.logits(model, plan);
            ActivationPlan mergedPlan = new ActivationPlan(merged, null, 2, 24, false, false);
            LlamaPass.forward(merged, null, mergedPlan, ids, 0, null);
            assertTrue(MergeCheck.relativeError(LlamaPass.logits(merged, mergedPlan), adapterLogits) < 1e-5);
        }
    }

    private static int[] toInts(long[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            o[i] = Math.toIntExact(a[i]);
        }
        return o;
    }
}
