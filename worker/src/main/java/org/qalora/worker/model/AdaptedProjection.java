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
        if (slot == null) {
            be.linear(x, w, y);                                              // y[N,O] = x W^T
            return;
        }
        float s = (float) cfg.scaling(), f = cfg.pooling().poolFactor(slot.in, cfg.groupSize());
        be.groupPool(x, cfg.groupSize(), f, lb.pooled);                      // pooled[N,G] = f groupsum(x)
        if (folded(be, w, lb)) {
            // The adapter's output is constant inside a group, so it is a change of zero points (the merge):
            // y = x (W + s f expand(B A))^T in one product. u is still what dB needs.
            be.matmulNT(lb.pooled, slot.a, lb.u, s);                         // u[N,r] = s pooled A^T
            be.linear(x, be.foldAdapter(w, slot.a, slot.b, s * f), y);       // y[N,O] = x W'^T
            return;
        }
        be.linear(x, w, y);                                                  // y[N,O] = x W^T
        if (lb.mask != null) {
            be.dropout(lb.pooled, lb.mask, (float) cfg.dropout(), dropoutSeed);
        }
        be.matmulNT(lb.pooled, slot.a, lb.u, s);                             // u[N,r] = s pooled A^T
        be.matmulNT(lb.u, slot.b, y, true);                                  // y[N,O] += u B^T
    }

    /** Dropout masks each token's pooled input differently, which no change of the weight can express. */
    private static boolean folded(Backend be, LinearWeight w, ActivationPlan.LoraBuffers lb) {
        return lb.mask == null && be.foldsAdapter(w);
    }

    /**
     * Writes ({@code accumulate} false) or adds {@code dy W} and the adapter's input gradient into {@code dx [N, I]},
     * and adds the adapter's weight gradients into its slot.
     */
    static void backward(Backend be, LinearWeight w, AdapterSlot slot, QaloraConfig cfg, Tensor dy, Tensor dx,
                         boolean accumulate, ActivationPlan.LoraBuffers lb, ActivationPlan.GradBuffers gb,
                         Projection p) {
        if (slot == null) {
            be.linearBackwardInput(dy, w, dx, accumulate);                   // dx[N,I] (+)= dy W
            return;
        }
        float s = (float) cfg.scaling(), f = cfg.pooling().poolFactor(slot.in, cfg.groupSize());
        Tensor du = gb.dU.get(p);
        be.matmulTN(dy, lb.u, slot.gradB, true);                             // dB[O,r] += dy^T u
        be.matmulNN(dy, slot.b, du, s);                                      // du[N,r] = s dy B = d(pooled A^T)
        be.matmulTN(du, lb.pooled, slot.gradA, true);                        // dA[r,G] += du^T pooled
        if (folded(be, w, lb)) {
            be.linearBackwardInput(dy, be.foldAdapter(w, slot.a, slot.b, s * f), dx, accumulate); // dx (+)= dy W'
            return;
        }
        be.linearBackwardInput(dy, w, dx, accumulate);                       // dx[N,I] (+)= dy W
        Tensor dPooled = gb.dPooled.get(p);
        be.matmulNN(du, slot.a, dPooled, false);                             // dPooled[N,G] = du A
        if (lb.mask != null) {
            be.multiply(dPooled, lb.mask);
        }
        be.groupPoolBackward(dPooled, cfg.groupSize(), f, dx);               // dx[n,i] += f dPooled[n, i/g]
    }
}
