package org.qalora.worker.quantize;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.EnumMap;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.quantizer.GptqQuantizer;
import org.qalora.quant.quantizer.Hessian;
import org.qalora.quant.quantizer.HessianSum;
import org.qalora.quant.quantizer.GptqDevice;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.model.LlamaDims;
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
 * gate/up) share one Hessian and one factorisation. The Hessians are summed in the canonical chunk order of
 * {@link HessianSum} and {@link CalibrationChunks}, the order {@code train}'s distributed calibration uses, and the
 * per-chunk work is {@link LayerCalibrator}'s, shared with it: the two give the same bits.
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

    private LayerwiseGptq() {}

    static Result run(ModelParts parts, GptqConfig config, CalibrationData data, PrintWriter log, Listener listener)
            throws IOException {
        return run(parts, config, data, log, listener, GptqDevice.CPU);
    }

    /**
     * @param device where the inverse-Hessian factors are computed (every projection of the model on the same one) and
     *               where the column stage runs
     */
    static Result run(ModelParts parts, GptqConfig config, CalibrationData data, PrintWriter log, Listener listener,
                      GptqDevice device) throws IOException {
        GptqQuantizer quantizer = quantizer(config, device);
        int layers = parts.config.numHiddenLayers();
        LlamaDims d = ModelParts.dims(parts.config);
        int n = data.sequences();
        int chunks = CalibrationChunks.count(n);
        float[][] hidden = parts.embed(data);                    // [n][T * H], entering layer 0
        LayerCalibrator calibrator = new LayerCalibrator(parts, data.seqLen());
        Map<String, QuantizedMatrix> result = new LinkedHashMap<>();
        for (int l = 0; l < layers; l++) {
            Map<Projection, float[]> dense = new EnumMap<>(Projection.class);
            Map<Projection, LinearWeight> current = new EnumMap<>(Projection.class);
            for (Projection p : Projection.values()) {
                dense.put(p, parts.projectionWeight(l, p));
                current.put(p, parts.backend.denseWeight(parts.backend.upload(dense.get(p), p.outFeatures(d), p.inFeatures(d))));
            }
            for (Set<Projection> stage : LayerCalibrator.stages(config.trueSequential())) {
                // The canonical order (HessianSum): per chunk, then the chunk sums in chunk order from zero, as the
                // distributed calibration adds its tasks' partials.
                Map<Projection, HessianSum> sums = new EnumMap<>(Projection.class);
                for (int c = 0; c < chunks; c++) {
                    float[][] chunk = Arrays.copyOfRange(hidden, CalibrationChunks.start(n, c), CalibrationChunks.start(n, c + 1));
                    calibrator.hessians(l, current, stage, chunk).forEach((input, partial) ->
                            sums.computeIfAbsent(input, k -> new HessianSum(partial.columns())).plus(partial));
                }
                Map<Projection, Hessian> hessians = new EnumMap<>(Projection.class);
                sums.forEach((input, sum) -> hessians.put(input, sum.toHessian()));
                Map<Projection, GptqQuantizer.InverseHessian> prepared = new EnumMap<>(Projection.class);
                for (Projection p : stage) {
                    int out = p.outFeatures(d);
                    int in = p.inFeatures(d);
                    String prefix = p.prefix(l);
                    Projection input = LayerCalibrator.inputOf(p, stage);
                    GptqQuantizer.InverseHessian inverse =
                            prepared.computeIfAbsent(input, k -> quantizer.prepare(hessians.get(k), prefix));
                    QuantizedMatrix q = quantizer.quantize(dense.get(p), out, in, inverse, prefix);
                    current.put(p, parts.backend.quantizedWeight(q));
                    result.put(prefix, q);
                    if (listener != null) {
                        listener.quantized(prefix, dense.get(p), out, in, hessians.get(input), q);
                    }
                }
            }
            // The quantized layer produces the next layer's inputs.
            calibrator.advance(l, current, hidden);
            log.printf("gptq: layer %d/%d quantized%n", l + 1, layers);
            log.flush();
        }
        return new Result(result, hidden);
    }

    /** The quantizer of {@code config}'s settings, its solve and column stage on {@code device}. */
    static GptqQuantizer quantizer(GptqConfig config, GptqDevice device) {
        return new GptqQuantizer(config.bits(), config.groupSize(), config.sym(), config.descAct(),
                config.staticGroups(), config.dampPercent()).on(device);
    }
}
