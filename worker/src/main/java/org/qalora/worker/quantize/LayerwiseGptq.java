package org.qalora.worker.quantize;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.quantizer.GptqQuantizer;
import org.qalora.quant.quantizer.Hessian;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LayerWeights;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.Projection;

/**
 * GPTQ over a whole model, layer by layer as the reference driver ({@code llama_sequential}): the Hessians of
 * layer {@code l} come from the calibration sequences run through layers that are <em>already quantized</em>
 * ({@code < l}), so each layer corrects for the error its inputs carry.
 *
 * <p>With {@code true_sequential} the projections of a layer are done in the reference's four stages
 * {@code [k, v, q]}, {@code [o]}, {@code [up, gate]}, {@code [down]}, each stage's Hessian taken with the earlier
 * stages already quantized; otherwise all seven come from one pass. Projections sharing an input (q/k/v,
 * gate/up) share one Hessian.
 *
 * <p>Each pass runs the worker's forward over a model truncated to the first {@code l + 1} layers (the worker
 * exposes whole-model passes only), so calibration costs {@code O(L^2)} layer evaluations rather than
 * {@code O(L)}; fine for the model sizes we test, and the first thing to change for 70B-class models.
 */
final class LayerwiseGptq {
    /** Sees every finished projection: the dense weight, the Hessian it was quantized against, the result. */
    interface Listener {
        void quantized(String prefix, float[] dense, int out, int in, Hessian hessian, QuantizedMatrix result);
    }

    private static final List<Set<Projection>> TRUE_SEQUENTIAL = List.of(
            EnumSet.of(Projection.K, Projection.V, Projection.Q), EnumSet.of(Projection.O),
            EnumSet.of(Projection.UP, Projection.GATE), EnumSet.of(Projection.DOWN));
    private static final List<Set<Projection>> ALL_AT_ONCE = List.of(EnumSet.allOf(Projection.class));

    private LayerwiseGptq() {}

    static Map<String, QuantizedMatrix> run(ModelParts parts, GptqConfig config, CalibrationData data, PrintWriter log,
                                            Listener listener) throws IOException {
        GptqQuantizer quantizer = new GptqQuantizer(config.bits(), config.groupSize(), config.sym(), config.descAct(),
                config.staticGroups(), config.dampPercent());
        int layers = parts.config.numHiddenLayers();
        var d = parts.dims(layers);
        Map<String, QuantizedMatrix> result = new LinkedHashMap<>();
        List<LayerWeights> done = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            Map<Projection, float[]> dense = new EnumMap<>(Projection.class);
            Map<Projection, LinearWeight> current = new EnumMap<>(Projection.class);
            for (Projection p : Projection.values()) {
                dense.put(p, parts.projectionWeight(l, p));
                current.put(p, parts.backend.denseWeight(parts.backend.upload(dense.get(p), p.outFeatures(d), p.inFeatures(d))));
            }
            for (Set<Projection> stage : config.trueSequential() ? TRUE_SEQUENTIAL : ALL_AT_ONCE) {
                Map<Projection, Hessian> hessians = collectHessians(parts, done, l, current, stage, data);
                // Projections sharing an input share the Hessian: factorise each distinct one once.
                Map<Hessian, GptqQuantizer.InverseHessian> prepared = new IdentityHashMap<>();
                for (Projection p : stage) {
                    int out = p.outFeatures(d);
                    int in = p.inFeatures(d);
                    String prefix = p.prefix(l);
                    GptqQuantizer.InverseHessian inverse =
                            prepared.computeIfAbsent(hessians.get(p), h -> quantizer.prepare(h, prefix));
                    QuantizedMatrix q = quantizer.quantize(dense.get(p), out, in, inverse, prefix);
                    current.put(p, parts.backend.quantizedWeight(q));
                    result.put(prefix, q);
                    if (listener != null) {
                        listener.quantized(prefix, dense.get(p), out, in, hessians.get(p), q);
                    }
                }
            }
            done.add(parts.layer(l, current));
            log.printf("gptq: layer %d/%d quantized%n", l + 1, layers);
            log.flush();
        }
        return result;
    }

    /** One calibration pass over the first {@code l + 1} layers, accumulating the Hessians of {@code stage}. */
    private static Map<Projection, Hessian> collectHessians(ModelParts parts, List<LayerWeights> done, int l,
                                                            Map<Projection, LinearWeight> current, Set<Projection> stage,
                                                            CalibrationData data) {
        List<LayerWeights> layers = new ArrayList<>(done);
        layers.add(parts.layer(l, current));
        LlamaModel model = parts.prefixModel(layers);
        var d = model.dims();
        Map<Projection, Hessian> hessians = new EnumMap<>(Projection.class);
        Map<Projection, Projection> observed = new EnumMap<>(Projection.class); // projection whose input we record
        for (Projection p : stage) {
            Projection source = switch (p) {
                case Q, K, V -> Projection.Q;
                case GATE, UP -> Projection.GATE;
                default -> p;
            };
            Projection first = stage.contains(source) ? source : p;
            observed.putIfAbsent(first, first);
            hessians.put(p, hessians.computeIfAbsent(first, k -> new Hessian(p.inFeatures(d))));
        }
        // Recompute mode keeps one set of layer buffers: calibration needs no backward.
        ActivationPlan plan = new ActivationPlan(model, null, 1, data.seqLen(), false, true);
        for (int[] sequence : data.ids()) {
            LlamaPass.forward(model, null, plan, sequence, 0L, (layer, p, x, tokens, in) -> {
                if (layer == l && observed.containsKey(p)) {
                    hessians.get(p).add(x, tokens, 1);
                }
            });
        }
        return hessians;
    }
}
