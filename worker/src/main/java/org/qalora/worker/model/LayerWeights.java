package org.qalora.worker.model;

import java.util.EnumMap;
import java.util.Map;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/**
 * The frozen weights of one decoder layer.
 *
 * @param inputNorm     {@code input_layernorm.weight [H]}
 * @param postNorm      {@code post_attention_layernorm.weight [H]}
 * @param projections   all seven projections
 */
public record LayerWeights(Tensor inputNorm, Tensor postNorm, Map<Projection, LinearWeight> projections) {
    public LayerWeights {
        projections = new EnumMap<>(projections);
        for (Projection p : Projection.values()) {
            if (!projections.containsKey(p)) {
                throw new IllegalArgumentException("layer is missing projection " + p.module());
            }
        }
    }

    public LinearWeight get(Projection p) { return projections.get(p); }
}
