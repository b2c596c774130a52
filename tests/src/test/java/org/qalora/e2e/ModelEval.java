package org.qalora.e2e;

import java.io.IOException;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.plan.HeldOutBatches;
import org.qalora.datasets.plan.PlannedBatch;
import org.qalora.datasets.plan.ShardBatchReader;
import org.qalora.datasets.plan.TokenBatch;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;

/** Evaluation for the end-to-end tests: logits of a model (with or without an adapter) and dataset losses. */
final class ModelEval {
    private ModelEval() {}

    /** A PEFT adapter prepared for evaluation (dropout off), or none (both null) for the base model alone. */
    private record Adapter(QaloraAdapter adapter, QaloraConfig config) {
        static Adapter load(LlamaModel m, String adapterDir) {
            if (adapterDir == null) {
                return new Adapter(null, null);
            }
            PeftAdapter peft = PeftAdapter.read(adapterDir);
            QaloraConfig c = peft.config();
            QaloraConfig eval = new QaloraConfig(c.rank(), c.alpha(), c.groupSize(), c.pooling(), 0.0, c.targets());
            return new Adapter(QaloraAdapter.create(m, eval, peft.weights(), false), eval);
        }
    }

    /** Logits [B, T, V] of {@code model} (+ the PEFT adapter at {@code adapterDir} unless null) on {@code batch}. */
    static float[] logits(String model, String adapterDir, TokenBatch batch) {
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel m = LlamaModel.load(model, be);
            Adapter a = Adapter.load(m, adapterDir);
            ActivationPlan plan = new ActivationPlan(m, a.config(), batch.batchSize(), batch.seqLen(), false, false);
            LlamaPass.forward(m, a.adapter(), plan, batch.inputIds(), 0, null);
            return LlamaPass.logits(m, plan);
        }
    }

    /** Mean token loss of {@code model} (+ adapter) over every record of the dataset. */
    static double datasetLoss(String model, String adapterDir, String dataset, Configuration conf) throws IOException {
        List<PlannedBatch> batches = HeldOutBatches.load(dataset, conf, 512);
        ShardBatchReader reader = ShardBatchReader.open(dataset, conf);
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel m = LlamaModel.load(model, be);
            Adapter a = Adapter.load(m, adapterDir);
            double lossSum = 0;
            long targets = 0;
            for (PlannedBatch b : batches) {
                TokenBatch t = reader.read(b);
                ActivationPlan ap = new ActivationPlan(m, a.config(), t.batchSize(), t.seqLen(), false, false);
                LlamaPass.forward(m, a.adapter(), ap, t.inputIds(), 0, null);
                int[] shifted = LlamaPass.shiftedTargets(t.labels(), t.batchSize(), t.seqLen());
                lossSum += LlamaPass.loss(m, ap, shifted);
                targets += LlamaPass.countTargets(shifted);
            }
            return lossSum / targets;
        }
    }

    /** The first micro-batch of the dataset's records (longest first), as tokens. */
    static TokenBatch firstBatch(String dataset, Configuration conf) throws IOException {
        return ShardBatchReader.open(dataset, conf).read(HeldOutBatches.load(dataset, conf, 512).get(0));
    }

    static double relativeError(float[] out, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < out.length; i++) {
            num += (double) (out[i] - ref[i]) * (out[i] - ref[i]);
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }
}
