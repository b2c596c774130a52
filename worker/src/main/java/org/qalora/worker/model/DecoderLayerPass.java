package org.qalora.worker.model;

import org.qalora.quant.util.SplitMix64;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;

/**
 * Forward and backward of one LLaMA decoder layer (pre-norm attention block, then pre-norm SwiGLU block). The
 * backward reads as the forward in reverse; every step adds into its gradient buffers.
 */
final class DecoderLayerPass {
    private DecoderLayerPass() {}

    /** Dropout seed of one (pass seed, layer, projection): a fixed mix so recompute reproduces the same masks. */
    static long dropoutSeed(long passSeed, int layer, Projection p) {
        return SplitMix64.mix64(passSeed + SplitMix64.GOLDEN_GAMMA * (layer * 8L + p.ordinal() + 1));
    }

    /**
     * @param x   [N, H] residual stream entering the layer
     * @param out [N, H] residual stream leaving it
     */
    static void forward(LlamaModel model, int l, QaloraAdapter adapter, ActivationPlan plan, Tensor x, Tensor out,
                        long passSeed, ActivationObserver observer) {
        Backend be = model.backend();
        LlamaDims d = model.dims();
        LayerWeights w = model.layer(l);
        ActivationPlan.LayerBuffers a = plan.layer(l);
        QaloraConfig cfg = adapter == null ? null : adapter.config();
        RopeTables rope = model.rope(plan.seqLen);

        // attention block
        be.rmsNorm(x, w.inputNorm(), d.rmsEps(), a.a1, a.rstd1);                    // a1[N,H]
        project(model, l, adapter, plan, Projection.Q, a.a1, a.q, passSeed, observer); // q[N,nH*d]
        project(model, l, adapter, plan, Projection.K, a.a1, a.k, passSeed, observer); // k[N,nKV*d]
        project(model, l, adapter, plan, Projection.V, a.a1, a.v, passSeed, observer); // v[N,nKV*d]
        be.rope(a.q, rope.cos, rope.sin, plan.seqLen, d.heads(), d.headDim());
        be.rope(a.k, rope.cos, rope.sin, plan.seqLen, d.kvHeads(), d.headDim());
        be.attention(a.q, a.k, a.v, plan.attention, a.attentionState, a.attn);                // attn[N,nH*d]
        project(model, l, adapter, plan, Projection.O, a.attn, plan.tmpH, passSeed, observer);
        be.add(x, plan.tmpH, a.mid);                                                 // mid = x + o_proj(attn)

        // MLP block
        be.rmsNorm(a.mid, w.postNorm(), d.rmsEps(), a.a2, a.rstd2);                  // a2[N,H]
        project(model, l, adapter, plan, Projection.GATE, a.a2, a.gate, passSeed, observer); // gate[N,F]
        project(model, l, adapter, plan, Projection.UP, a.a2, a.up, passSeed, observer);     // up[N,F]
        be.swiglu(a.gate, a.up, a.act);                                              // act[N,F]
        project(model, l, adapter, plan, Projection.DOWN, a.act, plan.tmpH, passSeed, observer);
        be.add(a.mid, plan.tmpH, out);                                               // out = mid + down(act)
    }

    /**
     * On entry {@code dRes [N, H]} holds d loss / d (layer output); on exit d loss / d (layer input) (updated in
     * place, since the residual connections pass the gradient through unchanged).
     */
    static void backward(LlamaModel model, int l, QaloraAdapter adapter, ActivationPlan plan, Tensor x, Tensor dRes) {
        Backend be = model.backend();
        LlamaDims d = model.dims();
        LayerWeights w = model.layer(l);
        ActivationPlan.LayerBuffers a = plan.layer(l);
        ActivationPlan.GradBuffers g = plan.grads;
        RopeTables rope = model.rope(plan.seqLen);

        // MLP block, reversed: out = mid + down(swiglu(gate(a2), up(a2))), a2 = norm(mid). The first projection
        // into each gradient buffer writes it, the others add: no buffer needs zeroing.
        projectBackward(model, l, adapter, plan, Projection.DOWN, a.act, dRes, g.dAct, false); // dAct[N,F]
        be.swigluBackward(g.dAct, a.gate, a.up, g.dGate, g.dUp);                     // dGate, dUp[N,F]
        projectBackward(model, l, adapter, plan, Projection.UP, a.a2, g.dUp, g.dA2, false);
        projectBackward(model, l, adapter, plan, Projection.GATE, a.a2, g.dGate, g.dA2, true); // dA2[N,H]
        be.rmsNormBackward(g.dA2, a.mid, w.postNorm(), a.rstd2, dRes);              // dRes = d mid

        // attention block, reversed: mid = x + o(attention(rope(q(a1)), rope(k(a1)), v(a1))), a1 = norm(x)
        projectBackward(model, l, adapter, plan, Projection.O, a.attn, dRes, g.dAttn, false); // dAttn[N,nH*d]
        be.attentionBackward(g.dAttn, a.q, a.k, a.v, a.attentionState, plan.attention, g.dQ, g.dK, g.dV);
        be.ropeBackward(g.dK, rope.cos, rope.sin, plan.seqLen, d.kvHeads(), d.headDim());
        be.ropeBackward(g.dQ, rope.cos, rope.sin, plan.seqLen, d.heads(), d.headDim());
        projectBackward(model, l, adapter, plan, Projection.V, a.a1, g.dV, g.dA1, false);
        projectBackward(model, l, adapter, plan, Projection.K, a.a1, g.dK, g.dA1, true);
        projectBackward(model, l, adapter, plan, Projection.Q, a.a1, g.dQ, g.dA1, true); // dA1[N,H]
        be.rmsNormBackward(g.dA1, x, w.inputNorm(), a.rstd1, dRes);                 // dRes = d x
    }

    private static void project(LlamaModel model, int l, QaloraAdapter adapter, ActivationPlan plan, Projection p,
                                Tensor x, Tensor y, long passSeed, ActivationObserver observer) {
        var slot = adapter == null ? null : adapter.slot(l, p);
        AdaptedProjection.forward(model.backend(), model.layer(l).get(p), slot,
                adapter == null ? null : adapter.config(), x, y, plan.layer(l).lora.get(p),
                dropoutSeed(passSeed, l, p), observer, l, p);
    }

    /** {@code x}: the projection's forward input (plain LoRA's adapter input when it has no dropout copy). */
    private static void projectBackward(LlamaModel model, int l, QaloraAdapter adapter, ActivationPlan plan,
                                        Projection p, Tensor x, Tensor dy, Tensor dx, boolean accumulate) {
        var slot = adapter == null ? null : adapter.slot(l, p);
        AdaptedProjection.backward(model.backend(), model.layer(l).get(p), slot,
                adapter == null ? null : adapter.config(), dy, dx, x, accumulate, plan.layer(l).lora.get(p),
                plan.grads, p);
    }
}
