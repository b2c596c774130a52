package org.qalora.worker.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.qalora.worker.backend.cuda.CudaBackend;

/** The one backend factory: how a requested device and a task's GPU address become a device, and what opens. */
class BackendsTest {

    @Test
    void resolveTurnsTheRequestAndTheTaskAddressIntoADevice() {
        String[][] table = {
            // requested, task address (null: the task has no GPU), resolved
            {"auto", null, "cpu"},
            {"auto", "gpu:3", "gpu:3"},
            {null, null, "cpu"},
            {null, "gpu:1", "gpu:1"},
            {"cpu", null, "cpu"},
            {"cpu", "gpu:2", "cpu"},
            {"gpu", null, "gpu:0"},
            {"gpu", "gpu:2", "gpu:2"},
            {"gpu:5", null, "gpu:5"},
            {"gpu:5", "gpu:2", "gpu:5"},
            {" GPU:1 ", null, "gpu:1"},
            {"Auto", "gpu:4", "gpu:4"},
        };
        for (String[] row : table) {
            assertEquals(row[2], Backends.resolve(row[0], row[1]), "resolve(" + row[0] + ", " + row[1] + ")");
        }
        assertEquals(-1, Backends.gpuOrdinal("cpu"));
        assertEquals(0, Backends.gpuOrdinal("gpu"));
        assertEquals(7, Backends.gpuOrdinal("gpu:7"));
        assertEquals("auto", Backends.checkRequested(null));
        assertEquals("gpu:2", Backends.checkRequested(" GPU:2"));
    }

    @Test
    void malformedDevicesAreRejectedNamingTheValue() {
        for (String bad : new String[] {"gpu:x", "gpu:-1", "gpu:", "cuda", "gpu0", "", "tpu:1"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.resolve(bad, null),
                    bad);
            assertTrue(e.getMessage().contains("'" + bad + "'") && e.getMessage().contains("auto, cpu, gpu, gpu:N"),
                    e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Backends.checkRequested(bad), bad);
            assertThrows(IllegalArgumentException.class, () -> Backends.open(bad, null, 1), bad);
        }
        // auto is a request, not a device: open needs the resolved one
        assertThrows(IllegalArgumentException.class, () -> Backends.open("auto", null, 1));
    }

    @Test
    void precisionsParseAndDefaultByDevice() {
        assertEquals(Precision.BF16, Precision.parse(" BF16", "--precision"));
        assertEquals("fp32", Precision.FP32.label());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Precision.parse("fp16", "--precision"));
        assertTrue(e.getMessage().contains("--precision 'fp16'"), e.getMessage());
        assertEquals(Precision.FP32, Backends.defaultPrecision("cpu"));
        assertEquals(Precision.BF16, Backends.defaultPrecision("gpu:1"));
    }

    @Test
    void bf16OnTheCpuIsRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Backends.open("cpu", Precision.BF16, 1));
        assertTrue(e.getMessage().contains("bf16") && e.getMessage().contains("--device cpu"), e.getMessage());
    }

    @Test
    void theCpuOpensACpuBackendInFp32() {
        try (Backend b = Backends.open("cpu", null, 1)) {
            assertInstanceOf(CpuBackend.class, b);
        }
        try (Backend b = Backends.open("CPU", Precision.FP32, 2)) {
            assertInstanceOf(CpuBackend.class, b);
        }
    }

    @Test
    void anUnusableGpuFailsSayingWhy() {
        String why = CudaBackend.unusableReason(7);
        Assumptions.assumeTrue(why != null, "GPU 7 is usable on this machine");
        for (Precision p : new Precision[] {null, Precision.FP32, Precision.BF16}) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.open("gpu:7", p, 1));
            assertTrue(e.getMessage().contains("gpu:7") && e.getMessage().contains(why), e.getMessage());
        }
    }
}
