package org.qalora.worker.backend;

/** The backend contract on the CPU backend (two threads). */
class CpuBackendTest extends BackendContractTest {
    @Override
    protected Backend open() { return new CpuBackend(2); }
}
