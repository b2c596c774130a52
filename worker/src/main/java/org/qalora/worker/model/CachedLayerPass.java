package org.qalora.worker.model;

import java.util.Arrays;
import java.util.List;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/**
 * Forward of one decoder layer for new rows only, reading earlier positions' keys and values from a
 * {@link KvCache}: {@link DecoderLayerPass#forward} with the attention split into "write this step's k, v into the
 * cache" and "attend over the cache". A prefill (one sequence's prompt from position 0) attends over its own k, v
 * with the ordinary causal attention, so its numbers are exactly those of the full forward; a decode step (one
 * token per sequence) uses {@link Backend#cachedAttention}. Without an adapter the products go through the
 * backend's fusable calls ({@link Backend#linears}, {@link Backend#linearsRopeAndWriteCache},
 * {@link Backend#linearPlusResidualNorm}, {@link Backend#swigluOfLinears}), which compute what the separate calls do
 * in fewer GPU launches; so a layer ends with the norm that reads its output, the next layer's input norm.
 */
final class CachedLayerPass {
    private CachedLayerPass() {}

    /**
     * @param x     [N, H] residual stream entering the layer; its input norm is already in {@code a.a1, a.rstd1}
     * @param out   [N, H] residual stream leaving it
     * @param cache receives this step's keys and values; may be null for a prefill that is only scored
     * @param next  the norm that reads {@code out} (the next layer's input norm, or the final norm), computed here
     */
    static void forward(LlamaModel model, int l, QaloraAdapter adapter, StepActivations a, CachedStep step,
                        KvCache cache, Tensor x, Tensor out, NextNorm next) {
        Backend be = model.backend();
        LlamaDims d = model.dims();
        LayerWeights w = model.layer(l);
        List<Tensor> qkv = List.of(a.q, a.k, a.v);

        // attention block (a1 = norm(x), written by the previous layer's last product or by CachedPass)
        boolean decode = step.prefill() == null;
        if (adapter == null && decode) {                                            // q, k, v, rope, cache write:
            be.linearsRopeAndWriteCache(a.a1, weights(w, Projection.Q, Projection.K, Projection.V), a.q, a.k, a.v,
                    a.cos, a.sin, a.rows, d.heads(), d.kvHeads(), d.headDim(),       // one launch on a GPU
                    cache.keys(l), cache.values(l), cache.shape(), step.rows());
        } else {
            if (adapter == null) {                                                  // q, k, v in one go
                be.linears(a.a1, weights(w, Projection.Q, Projection.K, Projection.V), qkv);
            } else {
                project(model, l, adapter, a, Projection.Q, a.a1, a.q);             // q[N,nH*d]
                project(model, l, adapter, a, Projection.K, a.a1, a.k);             // k[N,nKV*d]
                project(model, l, adapter, a, Projection.V, a.a1, a.v);             // v[N,nKV*d]
            }
            // cos/sin hold row n's own position, so "sequence length N" makes row n use table row n
            if (decode) {                                                           // one launch on a GPU
                be.ropeAndWriteCache(a.q, a.k, a.v, a.cos, a.sin, a.rows, d.heads(), d.kvHeads(), d.headDim(),
                        cache.keys(l), cache.values(l), cache.shape(), step.rows()); // cache[(s,p)] = k[n], v[n]
            } else {
                be.rope(a.q, a.cos, a.sin, a.rows, d.heads(), d.headDim());
                be.rope(a.k, a.cos, a.sin, a.rows, d.kvHeads(), d.headDim());
                if (cache != null) {
                    step.write(be, a.k, cache.keys(l), cache.shape());               // cache[(s,p)] = k[n]
                    step.write(be, a.v, cache.values(l), cache.shape());             // cache[(s,p)] = v[n]
                }
            }
        }
        if (!decode) {
            be.attention(a.q, a.k, a.v, step.prefill(), a.attentionState, a.attn);  // attn[N,nH*d], causal
        } else {
            be.cachedAttention(a.q, cache.keys(l), cache.values(l), cache.shape(), step.rows(),
                    a.attn);                                                         // attn[N,nH*d] over 0..p
        }
        if (adapter == null) {                                                      // mid = x + o_proj(attn),
            be.linearPlusResidualNorm(a.attn, w.get(Projection.O), x, a.tmpH, a.mid, // a2 = norm(mid)
                    w.postNorm(), d.rmsEps(), a.a2, a.rstd2);
        } else {
            project(model, l, adapter, a, Projection.O, a.attn, a.tmpH);
            be.add(x, a.tmpH, a.mid);                                               // mid = x + o_proj(attn)
            be.rmsNorm(a.mid, w.postNorm(), d.rmsEps(), a.a2, a.rstd2);             // a2[N,H]
        }

        // MLP block
        if (adapter == null) {
            be.swigluOfLinears(a.a2, w.get(Projection.GATE), w.get(Projection.UP), a.gate, a.up, a.act); // act[N,F]
            be.linearPlusResidualNorm(a.act, w.get(Projection.DOWN), a.mid, a.tmpH, out, // out = mid + down(act),
                    next.weight(), d.rmsEps(), next.normed(), next.rstd());         // next.normed = norm(out)
        } else {
            project(model, l, adapter, a, Projection.GATE, a.a2, a.gate);           // gate[N,F]
            project(model, l, adapter, a, Projection.UP, a.a2, a.up);               // up[N,F]
            be.swiglu(a.gate, a.up, a.act);                                         // act[N,F]
            project(model, l, adapter, a, Projection.DOWN, a.act, a.tmpH);
            be.add(a.mid, a.tmpH, out);                                             // out = mid + down(act)
            be.rmsNorm(out, next.weight(), d.rmsEps(), next.normed(), next.rstd());
        }
    }

    /** The RMSNorm applied to a layer's output: its weight and where the normed rows and their rstd go. */
    record NextNorm(Tensor weight, Tensor normed, Tensor rstd) {}

    private static List<LinearWeight> weights(LayerWeights w, Projection... p) {
        return Arrays.stream(p).map(w::get).toList();
    }

    private static void project(LlamaModel model, int l, QaloraAdapter adapter, StepActivations a, Projection p,
                                Tensor x, Tensor y) {
        var slot = adapter == null ? null : adapter.slot(l, p);
        AdaptedProjection.forward(model.backend(), model.layer(l).get(p), slot,
                adapter == null ? null : adapter.config(), x, y, a.lora.get(p), 0L, null, l, p);
    }
}
