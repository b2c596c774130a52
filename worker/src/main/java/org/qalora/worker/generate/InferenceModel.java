package org.qalora.worker.generate;

import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.model.LlamaModel;

/**
 * A model ready for inference: a checkpoint (HF, GPTQ, or merged with float zeros) on a backend, with an optional
 * PEFT QA-LoRA adapter placed on it with dropout off (inference is deterministic).
 *
 * @param adapter null when the model runs alone
 */
public record InferenceModel(LlamaModel model, QaloraAdapter adapter) {

    /** Loads {@code modelDir} and, unless null, {@code adapterDir} through {@code paths} onto {@code backend}. */
    public static InferenceModel load(String modelDir, String adapterDir, Backend backend, HadoopPaths paths) {
        LlamaModel m = LlamaModel.load(modelDir, backend, paths);
        if (adapterDir == null) {
            return new InferenceModel(m, null);
        }
        PeftAdapter peft = PeftAdapter.read(adapterDir, paths);
        QaloraConfig c = peft.config();
        QaloraConfig noDropout = new QaloraConfig(c.rank(), c.alpha(), c.groupSize(), c.pooling(), 0.0, c.targets());
        return new InferenceModel(m, QaloraAdapter.create(m, noDropout, peft.weights(), false));
    }

    public Generator generator() {
        return new Generator(model, adapter);
    }
}
