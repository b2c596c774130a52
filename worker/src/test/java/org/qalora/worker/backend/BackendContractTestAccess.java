package org.qalora.worker.backend;

/** Lets backends of other packages (the GPU's) run {@link BackendContractTest}. */
public abstract class BackendContractTestAccess extends BackendContractTest {
    @Override
    protected abstract Backend open();
}
