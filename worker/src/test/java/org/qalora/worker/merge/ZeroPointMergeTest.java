package org.qalora.worker.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.TinyModels;

/** The merged model (adapter folded into zero points) computes the same logits as base + adapter. */
class ZeroPointMergeTest {
    private static final CpuBackend BE = new CpuBackend(2);

    @AfterAll
    static void close() { BE.close(); }

    @ParameterizedTest
    @EnumSource(value = Pooling.class, names = "NONE", mode = EnumSource.Mode.EXCLUDE) // plain LoRA: LoraMergeTest
    void mergedModelReproducesAdapterLogits(Pooling pooling) {
        LlamaDims d = TinyModels.dims(40, 64, 96, 2, 4, 2);
        LlamaModel model = TinyModels.random(BE, d, 4, 32, 21);
        QaloraConfig cfg = QaloraConfig.allProjections(4, 8, 32, pooling, 0.0);
        SplittableRandom rng = new SplittableRandom(8);
        Map<String, float[]> w = QaloraAdapter.initialWeights(d, cfg, 4);
        w.replaceAll((k, v) -> k.contains("lora_B") ? TinyModels.gaussian(rng, v.length, 0.05) : v);
        int[] ids = TinyModels.ids(rng, 2 * 12, d.vocab());

        ActivationPlan plan = new ActivationPlan(model, cfg, 2, 12, false, false);
        LlamaPass.forward(model, QaloraAdapter.create(model, cfg, w, false), plan, ids, 0, null);
        float[] withAdapter = LlamaPass.logits(model, plan);
        LlamaPass.forward(model, null, plan, ids, 0, null);
        float[] baseOnly = LlamaPass.logits(model, plan);

        Map<String, QuantizedMatrix> merged = ZeroPointMerge.mergeAll(model, cfg, w);
        LlamaModel mergedModel = model.withQuantized(merged);
        LlamaPass.forward(mergedModel, null, plan, ids, 0, null);
        float[] mergedLogits = LlamaPass.logits(mergedModel, plan);

        assertTrue(MergeCheck.relativeError(withAdapter, baseOnly) > 1e-3, "the adapter must change the logits");
        assertTrue(MergeCheck.relativeError(mergedLogits, withAdapter) < 2e-6,
                "merged vs adapter: " + MergeCheck.relativeError(mergedLogits, withAdapter));
        assertFalse(merged.values().iterator().next().hasIntegerZeros());
    }

    @ParameterizedTest
    @EnumSource(value = Pooling.class, names = "NONE", mode = EnumSource.Mode.EXCLUDE) // plain LoRA: LoraMergeTest
    void zeroBKeepsZerosUnchanged(Pooling pooling) {
        QuantizedMatrix q = TinyModels.randomQuantized(new SplittableRandom(1), 8, 64, 4, 32, 0.1);
        QaloraConfig cfg = QaloraConfig.allProjections(2, 4, 32, pooling, 0.0);
        QuantizedMatrix m = ZeroPointMerge.merge(q, new float[2 * 2], new float[8 * 2], cfg, "x");
        assertArrayEquals(q.zeros(), m.zeros(), 0f);
        QaloraConfig wrongGroup = QaloraConfig.allProjections(2, 4, 16, pooling, 0.0);
        assertThrows(IllegalArgumentException.class,
                () -> ZeroPointMerge.merge(q, new float[2 * 4], new float[8 * 2], wrongGroup, "x"));
    }
}
