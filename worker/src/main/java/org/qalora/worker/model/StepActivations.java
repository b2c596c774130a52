package org.qalora.worker.model;

import java.util.EnumMap;
import java.util.Map;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;

/**
 * The activations of one inference step over N rows: a prompt's tokens (prefill) or one new token per sequence
 * (decode). There is no backward, so one set of layer buffers serves every layer, and the residual stream
 * ping-pongs between two tensors. Allocated once per step size and reused.
 */
final class StepActivations {
    final int rows;                 // N
    final Tensor[] residual;        // 2 x [N, H]; layer l reads residual[l % 2] and writes the other
    final Tensor cos;               // [N, d/2] rope table rows at each row's position
    final Tensor sin;               // [N, d/2]
    final Tensor rstd1;             // [N]
    final Tensor a1;                // [N, H] input_layernorm output
    final Tensor q;                 // [N, nH*d]
    final Tensor k;                 // [N, nKV*d]
    final Tensor v;                 // [N, nKV*d]
    final Tensor attentionState;    // prefill only: what Backend#attention keeps (read by nothing here)
    final Tensor attn;              // [N, nH*d]
    final Tensor tmpH;              // [N, H] o_proj / down_proj output
    final Tensor mid;               // [N, H] residual after attention
    final Tensor rstd2;             // [N]
    final Tensor a2;                // [N, H]
    final Tensor gate;              // [N, F]
    final Tensor up;                // [N, F]
    final Tensor act;               // [N, F]
    final Tensor finalRstd;         // [N]
    final Tensor finalOut;          // [N, H] model.norm output
    final Map<Projection, ActivationPlan.LoraBuffers> lora = new EnumMap<>(Projection.class);

    /** @param prefill the shape of the one sequence a prefill attends over, null for decode steps */
    StepActivations(LlamaModel model, QaloraConfig adapter, int rows, AttentionShape prefill) {
        Backend be = model.backend();
        LlamaDims d = model.dims();
        int qw = d.heads() * d.headDim(), kw = d.kvHeads() * d.headDim();
        this.rows = rows;
        residual = new Tensor[] {be.allocate(rows, d.hidden()), be.allocate(rows, d.hidden())};
        cos = be.allocate(rows, d.headDim() / 2);
        sin = be.allocate(rows, d.headDim() / 2);
        rstd1 = be.allocate(rows);
        a1 = be.allocateActivation(rows, d.hidden());
        q = be.allocateActivation(rows, qw);
        k = be.allocateActivation(rows, kw);
        v = be.allocateActivation(rows, kw);
        attentionState = prefill == null ? null : be.attentionState(prefill);
        attn = be.allocateActivation(rows, qw);
        tmpH = be.allocateActivation(rows, d.hidden());
        mid = be.allocate(rows, d.hidden());
        rstd2 = be.allocate(rows);
        a2 = be.allocateActivation(rows, d.hidden());
        gate = be.allocateActivation(rows, d.intermediate());
        up = be.allocateActivation(rows, d.intermediate());
        act = be.allocateActivation(rows, d.intermediate());
        finalRstd = be.allocate(rows);
        finalOut = be.allocateActivation(rows, d.hidden());
        if (adapter != null) {
            for (Projection p : adapter.orderedTargets()) {
                lora.put(p, new ActivationPlan.LoraBuffers(be, rows, p.inFeatures(d) / adapter.groupSize(),
                        adapter.rank(), false, ActivationPlan.copiesInput(adapter, false)));
            }
        }
    }
}
