package org.qalora.worker.merge;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;

/**
 * Folds a plain LoRA adapter into float weights: {@code y = x W^T + s (x A^T) B^T = x (W + s B A)^T}, so
 * <pre>  W'[o, i] = W[o, i] + s (B A)[o, i]</pre>
 * with {@code B A} computed by the backend's matrix product (fixed-order, fp32) and the sum rounded to float32 once.
 */
public final class LoraMerge {
    private LoraMerge() {}

    /**
     * @param w {@code [O, I]} the projection's float weight (not modified)
     * @param a {@code [r, I]}
     * @param b {@code [O, r]}
     * @return {@code W' [O, I]}
     */
    public static float[] merge(Backend be, float[] w, float[] a, float[] b, int out, int in, QaloraConfig cfg,
                                String name) {
        int r = cfg.rank();
        if (w.length != (long) out * in || a.length != (long) r * in || b.length != (long) out * r) {
            throw new IllegalArgumentException(name + ": weight " + w.length + ", A " + a.length + " and B " + b.length
                    + " elements do not fit [" + out + ", " + in + "], [" + r + ", " + in + "] and [" + out + ", " + r + "]");
        }
        Tensor bt = be.upload(b, out, r), at = be.upload(a, r, in), ba = be.allocate(out, in);
        be.matmulNN(bt, at, ba, false);                                      // BA[O,I] = B A
        float[] delta = be.download(ba);
        double s = cfg.scaling();
        float[] merged = new float[w.length];
        for (int i = 0; i < merged.length; i++) {
            merged[i] = (float) (w[i] + s * delta[i]);                       // W' = W + s BA
            if (!Float.isFinite(merged[i])) {
                throw new IllegalArgumentException(name + ": merged weight at flat index " + i + " is not finite");
            }
        }
        return merged;
    }

    /** Merges every adapted projection of the checkpoint; returns the new {@code .weight} tensors by name. */
    public static Map<String, float[]> mergeAll(Backend be, Checkpoint ck, LlamaDims dims, QaloraConfig cfg,
                                                Map<String, float[]> weights) throws IOException {
        if (!cfg.plainLora()) {
            throw new IllegalArgumentException("a QA-LoRA adapter folds into zero points (ZeroPointMerge), not into "
                    + "float weights");
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        for (int l = 0; l < dims.layers(); l++) {
            for (Projection p : cfg.orderedTargets()) {
                String name = p.prefix(l) + ".weight";
                if (!ck.contains(name)) {
                    throw new IllegalArgumentException(ck.directory() + " has no float " + name + ": plain LoRA merges "
                            + "into the float checkpoint it was trained on");
                }
                float[] a = weights.get(PeftKeys.a(l, p)), b = weights.get(PeftKeys.b(l, p));
                if (a == null || b == null) {
                    throw new IllegalArgumentException("adapter has no lora_A/lora_B for " + p.prefix(l));
                }
                out.put(name, merge(be, ck.floats(name), a, b, p.outFeatures(dims), p.inFeatures(dims), cfg, name));
            }
        }
        return out;
    }
}
