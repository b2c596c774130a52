package org.qalora.worker.backend.cuda;

import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.BackendContractTestAccess;
import org.qalora.worker.backend.Precision;

/** The backend contract on the GPU in fp32. Skipped (with the reason printed) without a usable GPU. */
class CudaBackendContractTest extends BackendContractTestAccess {
    @Override
    protected Backend open() { return CudaTestSupport.backendOrSkip(Precision.FP32); }
}
