package org.qalora.worker.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.ref.WeakReference;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.LinearWeight;

/**
 * A loaded model holds each quantized projection once, in the backend's kernel layout, and gives the canonical
 * matrices back bit for bit: what lets a CPU executor train a 7B base in half the heap it needed when the model
 * kept the matrices as loaded beside the kernel's blocked copy (docs/PERFORMANCE.md, 7B heap).
 */
class OneCopyOfWeightsTest {
    private static final CpuBackend BE = new CpuBackend(2);

    @AfterAll
    static void close() { BE.close(); }

    @Test
    void theRebuiltMatricesAreTheCheckpointsBitForBit() throws IOException {
        String dir = Fixtures.tinyLlamaGptq().toString();
        LlamaModel m = LlamaModel.load(dir, BE);
        Map<String, QuantizedMatrix> view = m.quantizedMatrices();
        assertEquals(m.dims().layers() * Projection.values().length, view.size());
        try (Checkpoint ck = Checkpoint.open(dir)) {
            LlamaConfig cfg = ck.config();
            for (Map.Entry<String, QuantizedMatrix> e : view.entrySet()) {
                QuantizedMatrix loaded = GptqCodec.read(ck, e.getKey(), cfg.quantization());
                assertEquals(loaded, e.getValue(), e.getKey());
                assertEquals(loaded, m.quantizedMatrix(e.getKey()), e.getKey());
            }
        }
        String q0 = Projection.values()[0].prefix(0);
        assertNotSame(m.quantizedMatrix(q0), m.quantizedMatrix(q0), "rebuilt per call, not held by the model");
        assertNull(m.quantizedMatrix("model.layers.0.no_such_proj"));
        assertThrows(UnsupportedOperationException.class, () -> view.entrySet().iterator().next().setValue(null));
    }

    /**
     * The backend's weight does not keep the matrix it was made from reachable: the arrays as loaded can be
     * collected while the weight lives (a full collection clears a weak reference to an unreachable object).
     */
    @Test
    void theCpuWeightDoesNotKeepTheLoadedMatrix() {
        QuantizedMatrix q = TinyModels.randomQuantized(new SplittableRandom(3), 96, 128, 4, 32, 0.05);
        QuantizedMatrix copy = new QuantizedMatrix(96, 128, 4, 32, q.qweight().clone(), q.scales().clone(),
                q.zeros().clone());
        LinearWeight w = BE.quantizedWeight(q);
        WeakReference<int[]> codes = new WeakReference<>(q.qweight());
        q = null;
        for (int i = 0; i < 10 && codes.get() != null; i++) {
            System.gc(); // a request: asked again until it has run
        }
        assertNull(codes.get(), "the loaded codes are still reachable from the backend's weight");
        assertEquals(copy, BE.quantizedMatrix(w));
        assertTrue(w.quantized() && w.outFeatures() == 96 && w.inFeatures() == 128);
    }
}
