package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.qalora.quant.cuda.CudaGraphs;
import org.qalora.worker.backend.IntTensor;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;

/**
 * The life of a {@link CudaStepGraph}: eager warm-up, capture, replay; a scratch reallocation invalidates the
 * recording (its addresses) and the step records again; a step that makes a call a graph cannot hold has its
 * capture refused, runs op by op with the right results, and leaves the backend usable. Skipped without a GPU.
 */
class CudaStepGraphTest {
    private static final float[] TABLE = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32};   // [4, 3]

    @Test
    void recordsAfterAWarmRunReplaysAndRecordsAgainAfterAScratchReallocation() {
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.FP32)) {
            CudaGraphs graphs = CudaGraphs.of(gpu.driver());
            Tensor table = gpu.upload(TABLE, 4, 3), out = gpu.allocate(2, 3);
            IntTensor ids = gpu.allocateInts(2);
            CudaStepGraph step = (CudaStepGraph) gpu.repeatable(() -> gpu.embedding(ids, table, out));
            long before = graphs.captures();
            check(gpu, step, ids, out, new int[] {3, 1});                  // eager warm-up
            assertFalse(step.replaying());
            check(gpu, step, ids, out, new int[] {0, 2});                  // recorded, then launched
            assertTrue(step.replaying());
            check(gpu, step, ids, out, new int[] {2, 2});                  // replayed
            assertEquals(1, graphs.captures() - before);

            try (DeviceScratch other = new DeviceScratch(gpu.driver())) {
                other.get(1 << 20);                                        // moves the scratch generation
            }
            assertFalse(step.replaying(), "a reallocated scratch makes the recording stale");
            check(gpu, step, ids, out, new int[] {1, 0});                  // eager again
            check(gpu, step, ids, out, new int[] {3, 3});                  // recorded again
            assertTrue(step.replaying());
            assertEquals(2, graphs.captures() - before);
            step.close();
        }
    }

    @Test
    void aStepWithAHostCopyFallsBackToRunningOpByOpAndLeavesTheBackendUsable() {
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.FP32)) {
            Tensor table = gpu.upload(TABLE, 4, 3), out = gpu.allocate(2, 3);
            // embedding(int[]) uploads its ids with a synchronous host copy: not something a graph can record
            CudaStepGraph step = (CudaStepGraph) gpu.repeatable(() -> gpu.embedding(new int[] {1, 2}, table, out));
            step.run();                                                    // eager: fine
            gpu.zero(out);
            step.run();                                                    // the capture is refused: runs eagerly
            assertTrue(step.fallback() != null, "the refused capture is reported");
            System.out.println("capture refused as expected: " + step.fallback());
            assertArrayEquals(new float[] {10, 11, 12, 20, 21, 22}, gpu.download(out), "the eager run's result");
            assertFalse(step.replaying());
            IntTensor ids = gpu.allocateInts(2);
            gpu.writeInts(ids, new int[] {3, 0});
            gpu.embedding(ids, table, out);                                // the default stream works on
            assertArrayEquals(new float[] {30, 31, 32, 0, 1, 2}, gpu.download(out));
            step.close();
        }
    }

    private static void check(CudaBackend gpu, CudaStepGraph step, IntTensor ids, Tensor out, int[] rows) {
        gpu.writeInts(ids, rows);
        step.run();
        float[] want = new float[6];
        for (int n = 0; n < 2; n++) {
            System.arraycopy(TABLE, 3 * rows[n], want, 3 * n, 3);
        }
        assertArrayEquals(want, gpu.download(out), "rows " + rows[0] + ", " + rows[1]);
    }
}
