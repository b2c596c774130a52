package org.qalora.worker.quantize;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.quantizer.GptqQuantizer;
import org.qalora.quant.quantizer.Hessian;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.ActivationObserver;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LayerWeights;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.Projection;

/**
 * GPTQ over a whole model, layer by layer as the reference driver ({@code llama_sequential}): the hidden states
 * of every calibration sequence are kept on the host; layer {@code l}'s Hessians come from its inputs, which were
 * produced by the <em>already quantized</em> layers {@code < l}, so each layer corrects for the error its inputs
 * carry; after quantizing, layer {@code l} is run once more to produce the inputs of layer {@code l + 1}.
 *
 * <p>With {@code true_sequential} the projections of a layer are done in the reference's four stages
 * {@code [k, v, q]}, {@code [o]}, {@code [up, gate]}, {@code [down]}, each stage's Hessian taken with the earlier
 * stages already quantized; otherwise all seven come from one pass. Projections sharing an input (q/k/v,
 * gate/up) share one Hessian and one factorisation.
 *
 * <p>Memory: the hidden states of all calibration tokens, {@code n * T * H} floats (the reference keeps the same on
 * the GPU), plus one layer's dense weights and Hessians.
 */
final class LayerwiseGptq {
    /** Sees every finished projection: the dense weight, the Hessian it was quantized against, the result. */
    interface Listener {
        void quantized(String prefix, float[] dense, int out, int in, Hessian hessian, QuantizedMatrix result);
    }

    /** The quantized projections, and the hidden states leaving the last layer ({@code [n][T * H]}). */
    record Result(Map<String, QuantizedMatrix> quantized, float[][] finalHidden) {}

    private static final List<Set<Projection>> TRUE_SEQUENTIAL = List.of(
            EnumSet.of(Projection.K, Projection.V, Projection.Q), EnumSet.of(Projection.O),
            EnumSet.of(Projection.UP, Projection.GATE), EnumSet.of(Projection.DOWN));
    private static final List<Set<Projection>> ALL_AT_ONCE = List.of(EnumSet.allOf(Projection.class));

    private LayerwiseGptq() {}

    static Result run(ModelParts parts, GptqConfig config, CalibrationData data, PrintWriter log, Listener listener)
            throws IOException {
        GptqQuantizer quantizer = new GptqQuantizer(config.bits(), config.groupSize(), config.sym(), config.descAct(),
                config.staticGroups(), config.dampPercent());
        int layers = parts.config.numHiddenLayers();
        LlamaDims d = ModelParts.dims(parts.config);
        int seqLen = data.seqLen();
        int h = parts.config.hiddenSize();
        float[][] hidden = parts.embed(data);                    // [n][T * H], entering layer 0
        Tensor table = parts.backend.allocate(seqLen, h);        // [T, H], one sequence's hidden states
        int[] positions = IntStream.range(0, seqLen).toArray(); // "token ids" that look up rows of the table
        Map<String, QuantizedMatrix> result = new LinkedHashMap<>();
        ActivationPlan plan = null;
        for (int l = 0; l < layers; l++) {
            Map<Projection, float[]> dense = new EnumMap<>(Projection.class);
            Map<Projection, LinearWeight> current = new EnumMap<>(Projection.class);
            for (Projection p : Projection.values()) {
                dense.put(p, parts.projectionWeight(l, p));
                current.put(p, parts.backend.denseWeight(parts.backend.upload(dense.get(p), p.outFeatures(d), p.inFeatures(d))));
            }
            for (Set<Projection> stage : config.trueSequential() ? TRUE_SEQUENTIAL : ALL_AT_ONCE) {
                LlamaModel model = parts.singleLayerModel(parts.layer(l, current), table, seqLen);
                if (plan == null) {
                    // Recompute mode keeps one set of layer buffers: calibration needs no backward.
                    plan = new ActivationPlan(model, null, 1, seqLen, false, true);
                }
                Map<Projection, Hessian> hessians = newHessians(stage, d);
                ActivationObserver observer = (layer, p, x, tokens, in) -> {
                    Hessian target = hessians.get(p);
                    if (target != null && p == firstSharing(p, stage)) {
                        target.add(x, tokens, 1);
                    }
                };
                for (float[] sequence : hidden) {
                    parts.backend.write(table, sequence);
                    LlamaPass.forward(model, null, plan, positions, 0L, observer);
                }
                Map<Hessian, GptqQuantizer.InverseHessian> prepared = new IdentityHashMap<>();
                for (Projection p : stage) {
                    int out = p.outFeatures(d);
                    int in = p.inFeatures(d);
                    String prefix = p.prefix(l);
                    GptqQuantizer.InverseHessian inverse =
                            prepared.computeIfAbsent(hessians.get(p), hh -> quantizer.prepare(hh, prefix));
                    QuantizedMatrix q = quantizer.quantize(dense.get(p), out, in, inverse, prefix);
                    current.put(p, parts.backend.quantizedWeight(q));
                    result.put(prefix, q);
                    if (listener != null) {
                        listener.quantized(prefix, dense.get(p), out, in, hessians.get(p), q);
                    }
                }
            }
            // The quantized layer produces the next layer's inputs.
            LlamaModel model = parts.singleLayerModel(parts.layer(l, current), table, seqLen);
            for (int s = 0; s < hidden.length; s++) {
                parts.backend.write(table, hidden[s]);
                LlamaPass.forward(model, null, plan, positions, 0L, null);
                hidden[s] = parts.backend.download(plan.residual[1]);
            }
            log.printf("gptq: layer %d/%d quantized%n", l + 1, layers);
            log.flush();
        }
        return new Result(result, hidden);
    }

    /** The projection whose observed input stands for {@code p}'s (q/k/v share one input, gate/up another). */
    private static Projection firstSharing(Projection p, Set<Projection> stage) {
        Projection source = switch (p) {
            case Q, K, V -> Projection.Q;
            case GATE, UP -> Projection.GATE;
            default -> p;
        };
        return stage.contains(source) ? source : p;
    }

    /** One Hessian per distinct input of the stage, mapped from every projection that reads it. */
    private static Map<Projection, Hessian> newHessians(Set<Projection> stage, LlamaDims d) {
        Map<Projection, Hessian> byProjection = new EnumMap<>(Projection.class);
        for (Projection p : stage) {
            Projection source = firstSharing(p, stage);
            Hessian shared = byProjection.get(source);
            if (shared == null) {
                shared = new Hessian(source.inFeatures(d));
                byProjection.put(source, shared);
            }
            byProjection.put(p, shared);
        }
        return byProjection;
    }
}
