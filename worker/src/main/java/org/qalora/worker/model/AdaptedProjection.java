package org.qalora.worker.model;

import org.qalora.worker.adapter.AdapterSlot;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/**
 * One projection with its optional QA-LoRA adapter, forward and backward:
 * {@code y = x W^T + s * (drop(f * groupsum(x)) A^T) B^T}.
 */
final class AdaptedProjection {
    private AdaptedProjection() {}

    /**
     * @param x  [N, I]
     * @param y  [N, O] (overwritten)
     * @param lb adapter activations of this projection (null without adapter)
     */
    static void forward(Backend be, LinearWeight w, AdapterSlot slot, QaloraConfig cfg, Tensor x, Tensor y,
                        ActivationPlan.LoraBuffers lb, long dropoutSeed, ActivationObserver observer, int layer,
                        Projection p) {
        if (observer != null) {
            observer.observe(layer, p, be.download(x), x.rows(), x.cols());
        }
        be.linear(x, w, y);                                                  // y[N,O] = x W^T
        if (slot == null) {
            return;
        }
        be.groupPool(x, cfg.groupSize(), cfg.pooling().poolFactor(slot.in, cfg.groupSize()), lb.pooled); // [N,G]
        if (lb.mask != null) {
            be.dropout(lb.pooled, lb.mask, (float) cfg.dropout(), dropoutSeed);
        }
        be.matmulNT(lb.pooled, slot.a, lb.u, false);                         // u[N,r] = pooled A^T
        be.scale(lb.u, (float) cfg.scaling());                               // u *= s
        be.matmulNT(lb.u, slot.b, y, true);                                  // y[N,O] += u B^T
    }

    /**
     * Adds {@code dy W} (and the adapter's input gradient) into {@code dx [N, I]} and the adapter's weight
     * gradients into its slot.
     */
    static void backward(Backend be, LinearWeight w, AdapterSlot slot, QaloraConfig cfg, Tensor dy, Tensor dx,
                         ActivationPlan.LoraBuffers lb, ActivationPlan.GradBuffers gb, Projection p) {
        if (slot != null) {
            Tensor du = gb.dU.get(p), dPooled = gb.dPooled.get(p);
            be.matmulTN(dy, lb.u, slot.gradB, true);                         // dB[O,r] += dy^T u
            be.matmulNN(dy, slot.b, du, false);                              // du[N,r] = dy B
            be.scale(du, (float) cfg.scaling());                             // d(pooled A^T) = s dy B
            be.matmulTN(du, lb.pooled, slot.gradA, true);                    // dA[r,G] += du^T pooled
            be.matmulNN(du, slot.a, dPooled, false);                         // dPooled[N,G] = du A
            if (lb.mask != null) {
                be.multiply(dPooled, lb.mask);
            }
            be.groupPoolBackward(dPooled, cfg.groupSize(), cfg.pooling().poolFactor(slot.in, cfg.groupSize()), dx);
        }
        be.linearBackwardInput(dy, w, dx);                                   // dx[N,I] += dy W
    }
}
