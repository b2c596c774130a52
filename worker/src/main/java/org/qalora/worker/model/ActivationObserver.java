package org.qalora.worker.model;

/**
 * An optional hook the forward pass calls with the input of every projection before it is applied; GPTQ
 * calibration accumulates its Hessians from these. Projections that share an input (q/k/v, gate/up) are each
 * reported, so an observer can treat every projection alike.
 */
@FunctionalInterface
public interface ActivationObserver {
    /**
     * @param layer      decoder layer index
     * @param projection which projection the input feeds
     * @param x          {@code [tokens, in]} row-major, a fresh copy the observer may keep
     */
    void observe(int layer, Projection projection, float[] x, int tokens, int in);
}
