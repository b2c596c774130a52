package org.qalora.worker.adapter;

import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.Projection;

/**
 * The adapter of one projection on a backend: {@code A [r, G]}, {@code B [out, r]} and, when training, their
 * gradient buffers (same shapes; backward adds into them).
 */
public final class AdapterSlot {
    public final int layer;
    public final Projection projection;
    public final int in;       // projection input width I
    public final int out;      // projection output width O
    public final int groups;   // G = I / g
    public final Tensor a;     // [r, G]
    public final Tensor b;     // [O, r]
    public final Tensor gradA; // [r, G], null when not training
    public final Tensor gradB; // [O, r], null when not training

    AdapterSlot(int layer, Projection projection, int in, int out, int groups, Tensor a, Tensor b, Tensor gradA,
                Tensor gradB) {
        this.layer = layer;
        this.projection = projection;
        this.in = in;
        this.out = out;
        this.groups = groups;
        this.a = a;
        this.b = b;
        this.gradA = gradA;
        this.gradB = gradB;
    }

    public String keyA() { return PeftKeys.a(layer, projection); }

    public String keyB() { return PeftKeys.b(layer, projection); }
}
