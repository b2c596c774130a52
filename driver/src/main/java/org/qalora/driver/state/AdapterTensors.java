package org.qalora.driver.state;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The trainable state the rounds move around: every adapter tensor (PEFT key order) with its AdamW first and
 * second moments, plus the global optimizer step. This is the driver's own view, independent of the worker's
 * in-memory classes, so that checkpoints, averaging and the Spark machinery do not change when the trainer does.
 * Instances are immutable by convention: nobody writes into the arrays after construction.
 */
public final class AdapterTensors {

    /** One adapter tensor: weights, AdamW m and v, all of {@code numel(shape)} floats, row-major. */
    public record Tensor(long[] shape, float[] weights, float[] adamM, float[] adamV) {
        public Tensor {
            Objects.requireNonNull(shape, "shape");
            long n = numel(shape);
            if (weights.length != n || adamM.length != n || adamV.length != n) {
                throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " needs " + n
                        + " floats, got weights " + weights.length + ", m " + adamM.length + ", v " + adamV.length);
            }
        }

        public int size() { return weights.length; }
    }

    private final Map<String, Tensor> tensors; // insertion order = PEFT key order
    private final long step;

    public AdapterTensors(Map<String, Tensor> tensors, long step) {
        if (tensors.isEmpty()) {
            throw new IllegalArgumentException("an adapter state needs at least one tensor");
        }
        if (step < 0) {
            throw new IllegalArgumentException("negative optimizer step " + step);
        }
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.step = step;
    }

    public List<String> keys() { return new ArrayList<>(tensors.keySet()); }

    public Tensor tensor(String key) {
        Tensor t = tensors.get(key);
        if (t == null) {
            throw new IllegalArgumentException("no adapter tensor named '" + key + "' (have " + tensors.size()
                    + " tensors, first " + tensors.keySet().iterator().next() + ")");
        }
        return t;
    }

    public long step() { return step; }

    /** Total number of adapter parameters (weights only). */
    public long parameterCount() {
        long n = 0;
        for (Tensor t : tensors.values()) {
            n += t.size();
        }
        return n;
    }

    /** True when both states have the same keys in the same order with the same shapes. */
    public boolean sameLayout(AdapterTensors other) {
        if (!keys().equals(other.keys())) {
            return false;
        }
        for (String k : tensors.keySet()) {
            if (!Arrays.equals(tensor(k).shape(), other.tensor(k).shape())) {
                return false;
            }
        }
        return true;
    }

    /** Bitwise equality of every weight, moment and the step: what "bit-identical runs" means. */
    public boolean bitwiseEquals(AdapterTensors other) {
        if (step != other.step || !sameLayout(other)) {
            return false;
        }
        for (String k : tensors.keySet()) {
            Tensor a = tensor(k);
            Tensor b = other.tensor(k);
            if (!Arrays.equals(a.weights(), b.weights()) || !Arrays.equals(a.adamM(), b.adamM())
                    || !Arrays.equals(a.adamV(), b.adamV())) {
                return false;
            }
        }
        return true;
    }

    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d <= 0) {
                throw new IllegalArgumentException("bad tensor shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " is too large for one array");
        }
        return n;
    }
}
