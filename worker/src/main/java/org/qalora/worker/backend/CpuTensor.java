package org.qalora.worker.backend;

/** A tensor of the {@link CpuBackend}: a Java float array, row-major. Only the CPU backend reads {@link #data}. */
final class CpuTensor extends Tensor {
    private final CpuBackend owner;
    final float[] data;

    CpuTensor(CpuBackend owner, float[] data, int... shape) {
        super(shape);
        if (data.length != size()) {
            throw new IllegalArgumentException("data has " + data.length + " elements, shape needs " + size());
        }
        this.owner = owner;
        this.data = data;
    }

    @Override
    public Backend backend() { return owner; }
}
