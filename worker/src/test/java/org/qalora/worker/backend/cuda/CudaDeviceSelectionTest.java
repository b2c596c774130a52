package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;

/** Choosing a GPU by ordinal on a GPU host: ordinal 0 opens, an ordinal the machine lacks is refused, saying so. */
class CudaDeviceSelectionTest {
    @Test
    void ordinalZeroOpensAndAMissingOrdinalIsRefusedWithTheReason() {
        CudaTestSupport.backendOrSkip(Precision.FP32).close();
        assertNull(CudaBackend.unusableReason(0));
        try (Backend be = Backends.open("gpu:0", null, 1)) {
            assertTrue(be.name().startsWith("cuda:0("), be.name());
            assertEquals(Precision.BF16, ((CudaBackend) be).precision(), "bf16 is the GPU default");
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.open("gpu:64", null, 1));
        assertTrue(e.getMessage().contains("no CUDA device with ordinal 64"), e.getMessage());
        System.out.println("GPU device selection: " + e.getMessage());
    }
}
