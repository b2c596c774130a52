package org.qalora.worker.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qalora.worker.adapter.AdapterSlot;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.GradCheck;

/**
 * Finite-difference check of the whole backward on a small random model: the gradient of every adapter tensor
 * (every projection type of every layer) against central differences of the loss, for each pooling convention and
 * plain LoRA ({@code NONE}: A [r, in] on a dense base, its input gradient added without pooling), dense and
 * quantized bases, with dropout, and with recomputation (which must give bit-identical gradients).
 */
class LlamaGradientCheckTest {
    private static final CpuBackend BE = new CpuBackend(2);

    @AfterAll
    static void close() { BE.close(); }

    @ParameterizedTest
    @CsvSource({"MEAN, 4, 0.0, ALL", "SUM, 4, 0.0, ALL", "PEFT, 0, 0.0, ALL", "MEAN, 3, 0.3, ALL",
                "SUM, 2, 0.0, V DOWN", "MEAN, 8, 0.1, O GATE", "NONE, 0, 0.0, ALL", "NONE, 0, 0.3, ALL",
                "NONE, 0, 0.0, K UP"})
    void adapterGradientsMatchFiniteDifferences(Pooling pooling, int bits, double dropout, String adapted) {
        LlamaDims d = TinyModels.dims(40, 32, 64, 2, 4, 2);
        LlamaModel model = TinyModels.random(BE, d, bits, 8, 11);
        java.util.EnumSet<Projection> set = java.util.EnumSet.noneOf(Projection.class);
        if (adapted.equals("ALL")) {
            set = java.util.EnumSet.allOf(Projection.class);
        } else {
            for (String t : adapted.split(" ")) {
                set.add(Projection.valueOf(t));
            }
        }
        QaloraConfig cfg = new QaloraConfig(4, 8, pooling == Pooling.NONE ? 1 : 8, pooling, dropout, set);
        SplittableRandom rng = new SplittableRandom(5);
        Map<String, float[]> w = QaloraAdapter.initialWeights(d, cfg, 3);
        for (Map.Entry<String, float[]> e : w.entrySet()) {
            if (e.getKey().contains("lora_B")) {
                e.setValue(TinyModels.gaussian(rng, e.getValue().length, 0.3)); // nonzero B so dA is nonzero
            }
        }
        int batch = 2, seq = 6;
        int[] ids = TinyModels.ids(rng, batch * seq, d.vocab());
        int[] labels = ids.clone();
        labels[0] = labels[1] = labels[seq] = -100;
        int[] targets = LlamaPass.shiftedTargets(labels, batch, seq);
        float scale = 1f / LlamaPass.countTargets(targets);
        long seed = 99;

        QaloraAdapter adapter = QaloraAdapter.create(model, cfg, w, true);
        ActivationPlan plan = new ActivationPlan(model, cfg, batch, seq, true, false);
        adapter.zeroGradients();
        LlamaPass.forward(model, adapter, plan, ids, seed, null);
        LlamaPass.lossAndBackward(model, adapter, plan, targets, scale, seed);
        Map<String, float[]> grads = adapter.gradients();

        for (AdapterSlot slot : adapter.slots()) {
            for (String key : new String[] {slot.keyA(), slot.keyB()}) {
                float[] x = w.get(key);
                GradCheck.directional(key, x, grads.get(key), xs -> {
                    Map<String, float[]> w2 = new java.util.LinkedHashMap<>(w);
                    w2.put(key, xs);
                    QaloraAdapter a2 = QaloraAdapter.create(model, cfg, w2, false);
                    ActivationPlan p2 = new ActivationPlan(model, cfg, batch, seq, true, false);
                    LlamaPass.forward(model, a2, p2, ids, seed, null);
                    return LlamaPass.loss(model, p2, targets) * scale;
                }, 1e-3, 2e-2, key.hashCode());
            }
        }

        // recomputation must reproduce the stored-activation gradients exactly
        QaloraAdapter again = QaloraAdapter.create(model, cfg, w, true);
        ActivationPlan recompute = new ActivationPlan(model, cfg, batch, seq, true, true);
        again.zeroGradients();
        LlamaPass.forward(model, again, recompute, ids, seed, null);
        LlamaPass.lossAndBackward(model, again, recompute, targets, scale, seed);
        Map<String, float[]> g2 = again.gradients();
        for (String key : grads.keySet()) {
            assertArrayEquals(grads.get(key), g2.get(key), 0f, key);
        }
        assertTrue(recompute.floats() < plan.floats());

        // lm_head and loss in chunks of one sequence: same loss and gradients, fewer floats held
        QaloraAdapter chunkedAdapter = QaloraAdapter.create(model, cfg, w, true);
        ActivationPlan chunked = new ActivationPlan(model, cfg, batch, seq, true, false, seq);
        assertEquals(seq, chunked.logitRows);
        chunkedAdapter.zeroGradients();
        LlamaPass.forward(model, chunkedAdapter, chunked, ids, seed, null);
        double chunkedLoss = LlamaPass.lossAndBackward(model, chunkedAdapter, chunked, targets, scale, seed);
        LlamaPass.forward(model, again, recompute, ids, seed, null);
        assertEquals(LlamaPass.loss(model, recompute, targets), chunkedLoss, 1e-5);
        Map<String, float[]> g3 = chunkedAdapter.gradients();
        for (String key : grads.keySet()) {
            assertTrue(org.qalora.worker.merge.MergeCheck.relativeError(g3.get(key), grads.get(key)) < 1e-6, key);
        }
        assertTrue(chunked.floats() < plan.floats());
        assertThrows(IllegalStateException.class, () -> LlamaPass.logits(model, chunked));
    }
}
