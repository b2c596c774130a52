package org.qalora.worker.quantize;

import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.qalora.quant.quantizer.HessianSum;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.ActivationObserver;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.Projection;

/**
 * The two things GPTQ calibration does with one decoder layer and one chunk of calibration sequences, shared by
 * single-process GPTQ ({@link LayerwiseGptq}) and {@code train}'s distributed calibration, so that both compute the
 * same bits:
 * <ul>
 *   <li>{@link #hessians}: run the layer (its projections as finished so far) on the chunk's hidden states and sum
 *   {@code X^T X} of the inputs of a stage's projections, one {@link HessianSum} per distinct input;
 *   <li>{@link #advance}: run the finished (quantized) layer to produce the next layer's inputs.
 * </ul>
 * One sequence at a time: the layer's "embedding table" is the sequence's hidden states ({@code [T, H]}).
 */
final class LayerCalibrator {
    /** The reference's true-sequential stages: each stage's Hessians are taken with the earlier ones quantized. */
    static final List<Set<Projection>> TRUE_SEQUENTIAL = List.of(
            EnumSet.of(Projection.K, Projection.V, Projection.Q), EnumSet.of(Projection.O),
            EnumSet.of(Projection.UP, Projection.GATE), EnumSet.of(Projection.DOWN));
    static final List<Set<Projection>> ALL_AT_ONCE = List.of(EnumSet.allOf(Projection.class));

    private final ModelParts parts;
    private final int seqLen;
    private final Tensor table;       // [T, H], one sequence's hidden states
    private final int[] positions;    // "token ids" 0..T-1 that look up rows of the table
    private ActivationPlan plan;

    LayerCalibrator(ModelParts parts, int seqLen) {
        this.parts = parts;
        this.seqLen = seqLen;
        this.table = parts.backend.allocate(seqLen, parts.config.hiddenSize());
        this.positions = IntStream.range(0, seqLen).toArray();
    }

    static List<Set<Projection>> stages(boolean trueSequential) {
        return trueSequential ? TRUE_SEQUENTIAL : ALL_AT_ONCE;
    }

    /** The projection whose observed input stands for {@code p}'s (q/k/v share one input, gate/up another). */
    static Projection inputOf(Projection p, Set<Projection> stage) {
        Projection source = switch (p) {
            case Q, K, V -> Projection.Q;
            case GATE, UP -> Projection.GATE;
            default -> p;
        };
        return stage.contains(source) ? source : p;
    }

    /**
     * The sums {@code X^T X} of the stage's distinct inputs over {@code hidden} (sequences in order), keyed by
     * {@link #inputOf}.
     *
     * @param current layer {@code l}'s seven projections as they are now (quantized up to the previous stage)
     * @param hidden  the chunk's hidden states entering layer {@code l}, {@code [sequences][T * H]}
     */
    Map<Projection, HessianSum> hessians(int l, Map<Projection, LinearWeight> current, Set<Projection> stage,
                                         float[][] hidden) {
        LlamaDims d = ModelParts.dims(parts.config);
        Map<Projection, HessianSum> sums = new EnumMap<>(Projection.class);
        for (Projection p : stage) {
            sums.computeIfAbsent(inputOf(p, stage), source -> new HessianSum(source.inFeatures(d)));
        }
        LlamaModel model = model(l, current);
        ActivationObserver observer = (layer, p, x, tokens, in) -> {
            HessianSum target = stage.contains(p) && inputOf(p, stage) == p ? sums.get(p) : null;
            if (target != null) {
                target.add(x, tokens);
            }
        };
        for (float[] sequence : hidden) {
            parts.backend.write(table, sequence);
            LlamaPass.forward(model, null, plan, positions, 0L, observer);
        }
        return sums;
    }

    /** Replaces each of {@code hidden}'s sequences by layer {@code l}'s output ({@code finished}: all quantized). */
    void advance(int l, Map<Projection, LinearWeight> finished, float[][] hidden) {
        LlamaModel model = model(l, finished);
        for (int s = 0; s < hidden.length; s++) {
            parts.backend.write(table, hidden[s]);
            LlamaPass.forward(model, null, plan, positions, 0L, null);
            hidden[s] = parts.backend.download(plan.residual[1]);
        }
    }

    private LlamaModel model(int l, Map<Projection, LinearWeight> projections) {
        LlamaModel model = parts.singleLayerModel(parts.layer(l, projections), table, seqLen);
        if (plan == null) {
            // Recompute mode keeps one set of layer buffers: calibration needs no backward.
            plan = new ActivationPlan(model, null, 1, seqLen, false, true);
        }
        return model;
    }
}
