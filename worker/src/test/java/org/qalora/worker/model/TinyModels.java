package org.qalora.worker.model;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Tensor;

/** Small random LLaMA models for gradient checks and benchmarks. */
public final class TinyModels {
    private TinyModels() {}

    public static LlamaDims dims(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads) {
        return new LlamaDims(vocab, hidden, intermediate, layers, heads, kvHeads, hidden / heads, 1e-5f,
                RopeParams.plain(10000), false);
    }

    /**
     * Random model: norms around 1, projections either dense N(0, 1/sqrt(in)) or RTN-quantized to {@code bits}
     * with groups of {@code groupSize} (0 = dense).
     */
    public static LlamaModel random(Backend be, LlamaDims d, int bits, int groupSize, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        Tensor emb = be.upload(gaussian(rng, d.vocab() * d.hidden(), 1.0), d.vocab(), d.hidden());
        List<LayerWeights> layers = new ArrayList<>();
        Map<String, QuantizedMatrix> quantized = new TreeMap<>();
        for (int l = 0; l < d.layers(); l++) {
            Map<Projection, LinearWeight> proj = new EnumMap<>(Projection.class);
            for (Projection p : Projection.values()) {
                int in = p.inFeatures(d), out = p.outFeatures(d);
                if (bits == 0) {
                    proj.put(p, be.denseWeight(be.upload(gaussian(rng, out * in, 1 / Math.sqrt(in)), out, in)));
                } else {
                    QuantizedMatrix q = randomQuantized(rng, out, in, bits, groupSize, 1 / Math.sqrt(in));
                    quantized.put(p.prefix(l), q);
                    proj.put(p, be.quantizedWeight(q));
                }
            }
            layers.add(new LayerWeights(be.upload(norm(rng, d.hidden()), d.hidden()),
                    be.upload(norm(rng, d.hidden()), d.hidden()), proj));
        }
        Tensor finalNorm = be.upload(norm(rng, d.hidden()), d.hidden());
        LinearWeight lm = be.denseWeight(be.upload(gaussian(rng, d.vocab() * d.hidden(), 1 / Math.sqrt(d.hidden())),
                d.vocab(), d.hidden()));
        return new LlamaModel(d, be, emb, layers, finalNorm, lm, quantized, null);
    }

    /** Random codes with scales ~ std * 2 / maxCode and zeros around the middle, so weights have std ~ {@code std}. */
    public static QuantizedMatrix randomQuantized(SplittableRandom rng, int out, int in, int bits, int groupSize, double std) {
        int max = (1 << bits) - 1, groups = in / groupSize;
        int[] codes = new int[out * in];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = rng.nextInt(max + 1);
        }
        float[] scales = new float[groups * out];
        float[] zeros = new float[groups * out];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) (std * 3.4 / max * (0.75 + 0.5 * rng.nextDouble()));
            zeros[i] = (max + 1) / 2 - 1 + rng.nextInt(3);
        }
        return QuantizedMatrix.fromCodes(out, in, bits, groupSize, codes, scales, zeros);
    }

    public static float[] gaussian(SplittableRandom rng, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i += 2) {
            double u1 = rng.nextDouble(), u2 = rng.nextDouble();
            double r = Math.sqrt(-2 * Math.log(1 - u1));
            a[i] = (float) (std * r * Math.cos(2 * Math.PI * u2));
            if (i + 1 < n) {
                a[i + 1] = (float) (std * r * Math.sin(2 * Math.PI * u2));
            }
        }
        return a;
    }

    private static float[] norm(SplittableRandom rng, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (0.8 + 0.4 * rng.nextDouble());
        }
        return a;
    }

    /** Random ids {@code [B*T]} in {@code [0, vocab)}. */
    public static int[] ids(SplittableRandom rng, int n, int vocab) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = rng.nextInt(vocab);
        }
        return ids;
    }
}
