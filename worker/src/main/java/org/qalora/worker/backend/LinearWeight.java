package org.qalora.worker.backend;

/**
 * A frozen linear layer weight {@code W [out, in]} prepared by a backend for {@link Backend#linear} (dense float32,
 * or group-quantized and repacked once into the kernel layout). Frozen: there is no gradient for it.
 */
public interface LinearWeight {
    int outFeatures();

    int inFeatures();

    /** True when the weight is group-quantized (QA-LoRA adapters and merging need this). */
    boolean quantized();
}
