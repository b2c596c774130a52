package org.qalora.worker.merge;

import java.util.LinkedHashMap;
import java.util.Map;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;

/**
 * Folds a QA-LoRA adapter into the zero points of its quantized projections. Because the adapter sees only
 * per-group sums of the input, it equals a weight delta that is constant within each group,
 * {@code dW[o, i] = c (B A)[o, i / g]}, and {@code S (Q - Z) + c P = S (Q - (Z - c P / S))}:
 * <pre>  Z'[k, o] = Z[k, o] - c (B A)^T[k, o] / S[k, o]</pre>
 * with {@code c} the pooling convention's merge factor. Codes and scales are unchanged; the new zeros are real.
 */
public final class ZeroPointMerge {
    private ZeroPointMerge() {}

    /**
     * @param a {@code [r, G]}
     * @param b {@code [O, r]}
     */
    public static QuantizedMatrix merge(QuantizedMatrix base, float[] a, float[] b, QaloraConfig cfg, String name) {
        int out = base.outFeatures(), groups = base.groups(), r = cfg.rank();
        if (base.groupSize() != cfg.groupSize()) {
            throw new IllegalArgumentException(name + ": quantization group size " + base.groupSize()
                    + " differs from qalora_group_size " + cfg.groupSize() + "; the adapter cannot be merged");
        }
        if (a.length != r * groups || b.length != out * r) {
            throw new IllegalArgumentException(name + ": adapter shapes A " + a.length + " / B " + b.length
                    + " elements do not fit [" + r + ", " + groups + "] / [" + out + ", " + r + "]");
        }
        double c = cfg.pooling().mergeFactor(cfg.scaling(), base.inFeatures(), cfg.groupSize());
        float[] zeros = base.zeros(), scales = base.scales();
        float[] merged = new float[zeros.length]; // [G, O]
        for (int k = 0; k < groups; k++) {
            for (int o = 0; o < out; o++) {
                double p = 0; // (B A)[o, k], accumulated in double: it is subtracted from zeros of size ~2^bits
                for (int j = 0; j < r; j++) {
                    p += (double) b[o * r + j] * a[j * groups + k];
                }
                int idx = k * out + o;
                merged[idx] = (float) (zeros[idx] - c * p / scales[idx]);
                if (!Float.isFinite(merged[idx])) {
                    throw new IllegalArgumentException(name + ": merged zero point at group " + k + ", output " + o
                            + " is not finite (scale " + scales[idx] + ")");
                }
            }
        }
        return base.withZeros(merged);
    }

    /** Merges every adapted projection of the model; returns the new matrices by module prefix. */
    public static Map<String, QuantizedMatrix> mergeAll(LlamaModel model, QaloraConfig cfg, Map<String, float[]> weights) {
        if (!model.isQuantized()) {
            throw new IllegalArgumentException("the base model is not group-quantized: QA-LoRA merges into GPTQ "
                    + "zero points, so merge needs the quantized checkpoint the adapter was trained on");
        }
        Map<String, QuantizedMatrix> merged = new LinkedHashMap<>();
        for (int l = 0; l < model.dims().layers(); l++) {
            for (Projection p : cfg.orderedTargets()) {
                String prefix = p.prefix(l);
                float[] a = weights.get(PeftKeys.a(l, p)), b = weights.get(PeftKeys.b(l, p));
                if (a == null || b == null) {
                    throw new IllegalArgumentException("adapter has no lora_A/lora_B for " + prefix);
                }
                merged.put(prefix, merge(model.quantizedMatrix(prefix), a, b, cfg, prefix));
            }
        }
        return merged;
    }
}
