package org.qalora.worker.merge;

import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.model.LlamaModel;

/**
 * The check a merged model must pass before it is published: its logits on the fixed probe batch
 * ({@link Merger#probeIds}) equal those of the base model with the adapter, within {@link Merger#LOGIT_TOLERANCE},
 * read back from what was written (any shard layout). Runs in fp32, the precision the tolerance bounds, on the CPU
 * or on a GPU (cuBLAS fp32 products with TF32 off): both models run on the same device, so what is compared is the
 * merge, not the device. It loads the base and the merged model one after the other (the expected logits are kept,
 * the base is let go).
 */
public final class MergeVerifier {
    private MergeVerifier() {}

    /**
     * @param device {@code cpu} or {@code gpu:N} (a resolved device, {@link Backends#resolve})
     * @return the report ({@code mergedProjections} from the layout)
     * @throws IllegalStateException when the logits differ by more than the tolerance (or are not finite), or the GPU
     *                               cannot be used (the reason says why)
     */
    public static Merger.Report verify(MergeLayout layout, String sourceDir, String adapterDir, String mergedDir,
                                       HadoopPaths paths, String device, int threads) {
        try (Backend backend = Backends.open(device, Precision.FP32, threads)) {
            PeftAdapter adapter = PeftAdapter.read(adapterDir, paths);
            LlamaModel base = LlamaModel.load(sourceDir, backend, paths);
            int[] probe = Merger.probeIds(base.dims().vocab());
            float[] expected = Merger.probeLogits(base, QaloraAdapter.create(base, adapter.config(), adapter.weights(),
                    false), probe);
            base = null; // let the base go before the merged model is loaded
            LlamaModel merged = LlamaModel.load(mergedDir, backend, paths);
            double[] err = Merger.compare(Merger.probeLogits(merged, null, probe), expected);
            if (!Merger.withinTolerance(err[0])) {
                throw new IllegalStateException("the merged model in " + mergedDir + " gives probe logits that differ from"
                        + " the base + adapter model's by " + err[0] + " (relative), not within " + Merger.LOGIT_TOLERANCE
                        + Merger.nonFiniteHint(err[0]) + ": it is not published");
            }
            return new Merger.Report(mergedDir, layout.adaptedProjections(), err[0], err[1]);
        }
    }
}
