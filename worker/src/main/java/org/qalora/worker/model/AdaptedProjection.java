package org.qalora.worker.model;

import org.qalora.worker.adapter.AdapterSlot;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/**
 * One projection with its optional adapter, forward and backward. QA-LoRA:
 * {@code y = x W^T + s * (drop(f * groupsum(x)) A^T) B^T} with {@code A [r, G]}; plain LoRA
 * ({@link QaloraConfig#plainLora()}): {@code y = x W^T + s * (drop(x) A^T) B^T} with {@code A [r, I]}. The two
 * differ only in the adapter's input {@code h}: the pooled input {@code [N, G]}, or the input itself {@code [N, I]}
 * (a copy only when dropout needs one to scale).
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
        float s = (float) cfg.scaling();
        Tensor h = adapterInput(be, slot, cfg, x, lb, dropoutSeed);          // h[N,G] (QA-LoRA) or [N,I] (LoRA)
        be.matmulNT(h, slot.a, lb.u, s);                                     // u[N,r] = s h A^T
        if (folded(be, w, cfg, lb)) {
            // The QA-LoRA adapter's output is constant inside a group, so it is a change of zero points (the
            // merge): y = x (W + s f expand(B A))^T in one product. u is still what dB needs.
            be.linear(x, be.foldAdapter(w, slot.a, slot.b, s * poolFactor(slot, cfg)), y); // y[N,O] = x W'^T
            return;
        }
        be.linear(x, w, y);                                                  // y[N,O] = x W^T
        be.matmulNT(lb.u, slot.b, y, true);                                  // y[N,O] += u B^T
    }

    private static float poolFactor(AdapterSlot slot, QaloraConfig cfg) {
        return cfg.pooling().poolFactor(slot.in, cfg.groupSize());
    }

    /**
     * Whether the adapter runs folded into the quantized weight ({@link Backend#foldsAdapter}): QA-LoRA only (plain
     * LoRA's output varies inside a group), and without dropout, which masks each token's pooled input differently
     * (no change of the weight can express that).
     */
    private static boolean folded(Backend be, LinearWeight w, QaloraConfig cfg, ActivationPlan.LoraBuffers lb) {
        return !cfg.plainLora() && lb.mask == null && be.foldsAdapter(w);
    }

    /**
     * What A multiplies: QA-LoRA pools into {@code lb.pooled [N, G]}; plain LoRA uses {@code x [N, I]} itself, or a
     * copy of it in {@code lb.pooled [N, I]} when dropout must scale it. Dropout is drawn in place, after pooling.
     */
    private static Tensor adapterInput(Backend be, AdapterSlot slot, QaloraConfig cfg, Tensor x,
                                       ActivationPlan.LoraBuffers lb, long dropoutSeed) {
        if (lb.pooled == null) {
            return x;                                                        // plain LoRA without dropout: h = x
        }
        be.groupPool(x, cfg.groupSize(), poolFactor(slot, cfg), lb.pooled);  // h[N,G]
        if (lb.mask != null) {
            be.dropout(lb.pooled, lb.mask, (float) cfg.dropout(), dropoutSeed); // h *= mask
        }
        return lb.pooled;
    }

    /**
     * Writes ({@code accumulate} false) or adds {@code dy W} and the adapter's input gradient into {@code dx [N, I]},
     * and adds the adapter's weight gradients into its slot.
     *
     * @param x the projection's input (what plain LoRA's A multiplied when it kept no copy)
     */
    static void backward(Backend be, LinearWeight w, AdapterSlot slot, QaloraConfig cfg, Tensor dy, Tensor dx,
                         Tensor x, boolean accumulate, ActivationPlan.LoraBuffers lb, ActivationPlan.GradBuffers gb,
                         Projection p) {
        if (slot == null) {
            be.linearBackwardInput(dy, w, dx, accumulate);                   // dx[N,I] (+)= dy W
            return;
        }
        float s = (float) cfg.scaling();
        Tensor du = gb.dU.get(p);
        Tensor h = lb.pooled == null ? x : lb.pooled;                        // the forward's adapter input
        be.matmulTN(dy, lb.u, slot.gradB, true);                             // dB[O,r] += dy^T u
        be.matmulNN(dy, slot.b, du, s);                                      // du[N,r] = s dy B = d(h A^T)
        be.matmulTN(du, h, slot.gradA, true);                                // dA[r,G|I] += du^T h
        if (folded(be, w, cfg, lb)) {
            be.linearBackwardInput(dy, be.foldAdapter(w, slot.a, slot.b, s * poolFactor(slot, cfg)), dx,
                    accumulate);                                             // dx[N,I] (+)= dy W'
            return;
        }
        be.linearBackwardInput(dy, w, dx, accumulate);                       // dx[N,I] (+)= dy W
        if (lb.pooled == null) {
            be.matmulNN(du, slot.a, dx, true);                               // dx[N,I] += du A   (h = x)
            return;
        }
        Tensor dH = gb.dPooled.get(p);
        be.matmulNN(du, slot.a, dH, false);                                  // dH[N,G] = du A
        if (lb.mask != null) {
            be.multiply(dH, lb.mask);                                        // dH *= mask
        }
        be.groupPoolBackward(dH, cfg.groupSize(), poolFactor(slot, cfg), dx); // dx[n,i] += f dH[n, i/g]
    }
}
