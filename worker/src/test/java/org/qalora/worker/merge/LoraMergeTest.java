package org.qalora.worker.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;

/** {@code W' = W + s B A} on a hand-sized example, and the errors. */
class LoraMergeTest {
    @Test
    void addsScaledProductOfTheFactors() {
        try (CpuBackend be = new CpuBackend(1)) {
            QaloraConfig cfg = QaloraConfig.lora(2, 4, 0.0);                     // s = alpha / r = 2
            float[] w = {1, 2, 3, 4, 5, 6};                                       // W [O=2, I=3]
            float[] a = {1, 0, -1, 0.5f, 2, 0};                                   // A [r=2, I=3]
            float[] b = {1, 2, -1, 0.25f};                                        // B [O=2, r=2]
            float[] m = LoraMerge.merge(be, w, a, b, 2, 3, cfg, "t");
            // B A = [[1*1+2*0.5, 1*0+2*2, 1*-1+2*0], [-1*1+0.25*0.5, -1*0+0.25*2, -1*-1+0.25*0]]
            //     = [[2, 4, -1], [-0.875, 0.5, 1]]
            float[] expected = {1 + 4, 2 + 8, 3 - 2, 4 - 1.75f, 5 + 1, 6 + 2};
            for (int i = 0; i < 6; i++) {
                assertEquals(expected[i], m[i], 0f, "element " + i);
            }
            assertEquals(1f, w[0], "W itself is not modified");
            var e = assertThrows(IllegalArgumentException.class, () -> LoraMerge.merge(be, w, a, b, 3, 2, cfg, "x.weight"));
            assertTrue(e.getMessage().contains("x.weight"), e.getMessage());
            var q = assertThrows(IllegalArgumentException.class, () -> LoraMerge.mergeAll(be, null, null,
                    QaloraConfig.allProjections(2, 4, 32, Pooling.MEAN, 0), java.util.Map.of()));
            assertTrue(q.getMessage().contains("zero points"), q.getMessage());
        }
    }
}
