package org.qalora.worker.backend.cuda;

import org.junit.jupiter.api.Assumptions;
import org.qalora.worker.backend.Precision;

/** Opens the GPU backend for a test, or skips the test (printing why) on a machine that has no usable GPU. */
public final class CudaTestSupport {
    private CudaTestSupport() {}

    private static volatile boolean reported;

    public static CudaBackend backendOrSkip(Precision precision) {
        String why = CudaBackend.unusableReason(0);
        if (why != null && !reported) {
            reported = true;
            System.out.println("GPU tests skipped: " + why);
        }
        Assumptions.assumeTrue(why == null, () -> "no usable GPU: " + why);
        return new CudaBackend(0, precision);
    }
}
