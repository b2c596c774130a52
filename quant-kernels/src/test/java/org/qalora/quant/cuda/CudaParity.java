package org.qalora.quant.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.kernels.ReferenceQuantKernels;

/**
 * The parity checks of the CUDA kernels against {@link ReferenceQuantKernels}, shared by the JUnit test (CI skips
 * it without a GPU) and {@link CudaSelfCheck} (run on the device machine, where no Maven is).
 *
 * <p>Each {@link Case} checks, on one random weight with real-valued zeros: dequantize (bit-identical, fast and
 * naive kernels), matmul, matmulTransposed overwriting and accumulating, and gemv, each three ways: through
 * {@link CudaQuantKernels}' policy (GEMV for one token, fused kernel below its cuBLAS threshold, dequantize +
 * cublasSgemm from there), through the fused kernel directly, and through the naive kernel. Callers run the cases
 * with the default policy (cuBLAS from 2 tokens) and with a fused-only instance. Accuracy contract: per element
 * {@code |gpu - reference| <= 2 k u M}, {@code u = 2^-24}, {@code k} the reduction length and
 * {@code M = sum |x| * scale * (|q| + |z|)} (covers any summation order and the GEMV's factored zero point;
 * a dropped or misplaced term, of size about {@code M / k}, fails it; codes are checked exactly by dequantize).
 */
public final class CudaParity {
    private CudaParity() {}

    private static final double U = Math.scalb(1.0, -24);

    /** One shape: bits, group size, tokens, output and input features. */
    public record Case(int bits, int groupSize, int tokens, int out, int in) {
        @Override
        public String toString() {
            return "bits=" + bits + " group=" + groupSize + " T=" + tokens + " O=" + out + " I=" + in;
        }
    }

    /**
     * Bits 2/3/4/8 x group sizes 32/64/128 and 48 (not a multiple of 32: the GEMV's general path) x odd token
     * counts (1 is the GEMV path; 130 crosses a 128-token tile) x odd output counts (67, 131 cross the 128-wide
     * tile and a 32-wide warp), I = 384 (divisible by every group size here).
     */
    public static List<Case> cases() {
        List<Case> cases = new ArrayList<>();
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int group : new int[] {32, 64, 128, 48}) {
                for (int tokens : new int[] {1, 3, 17, 130}) {
                    for (int out : new int[] {67, 131}) {
                        cases.add(new Case(bits, group, tokens, out, 384));
                    }
                }
            }
        }
        return cases;
    }

    /** A random weight: uniform codes, scales in [0.005, 0.025), real-valued zeros in [0, maxCode]. */
    public static QuantizedMatrix randomMatrix(Random random, int out, int in, int bits, int groupSize) {
        int[] codes = new int[out * in];
        for (int e = 0; e < codes.length; e++) {
            codes[e] = random.nextInt(1 << bits);
        }
        int groups = in / groupSize;
        float[] scales = new float[groups * out];
        float[] zeros = new float[groups * out];
        for (int e = 0; e < scales.length; e++) {
            scales[e] = 0.005f + 0.02f * random.nextFloat();
            zeros[e] = random.nextFloat() * ((1 << bits) - 1);
        }
        return QuantizedMatrix.fromCodes(out, in, bits, groupSize, codes, scales, zeros);
    }

    public static float[] randomVector(Random random, int n) {
        float[] v = new float[n];
        for (int e = 0; e < n; e++) {
            v[e] = (float) random.nextGaussian();
        }
        return v;
    }

    /** Runs one case; returns the failures (empty when the case passes). */
    public static List<String> check(CudaQuantKernels gpu, Case c) {
        List<String> failures = new ArrayList<>();
        ReferenceQuantKernels ref = new ReferenceQuantKernels();
        Random random = new Random(31L * c.hashCode() + 7);
        QuantizedMatrix m = randomMatrix(random, c.out(), c.in(), c.bits(), c.groupSize());
        int t = c.tokens(), o = c.out(), i = c.in();
        float[] x = randomVector(random, t * i);     // [T, I]
        float[] dy = randomVector(random, t * o);    // [T, O]
        float[] dx0 = randomVector(random, t * i);   // [T, I], accumulated into
        float[] absQz = absCodePlusZero(m);          // [O, I] scale * (|q| + |z|)
        CudaDriver cuda = gpu.module().driver();
        try (CudaPreparedWeight w = gpu.prepare(m)) {
            var rw = ref.prepare(m);

            float[] wantW = new float[o * i];
            ref.dequantize(rw, wantW);
            float[] gotW = new float[o * i];
            gpu.dequantize(w, gotW);
            exact(failures, c + " dequantize", wantW, gotW);
            try (DeviceBuffer d = DeviceBuffer.allocate(cuda, (long) o * i * 4)) {
                gpu.module().dequantize(w, d.pointer(), true);
                float[] naive = new float[o * i];
                cuda.copyToHost(d.pointer(), naive, 0, o * i);
                exact(failures, c + " dequantize_naive", wantW, naive);
            }

            float[] wantY = new float[t * o];
            ref.matmul(rw, x, 0, t, wantY, 0);
            float[] gotY = new float[t * o];
            gpu.matmul(w, x, 0, t, gotY, 0);
            float[] magY = magnitudeY(x, absQz, t, o, i);
            within(failures, c + " matmul", wantY, gotY, magY, i);
            within(failures, c + " qmatmul (fused, direct)", wantY, deviceMatmul(gpu, w, x, t, false), magY, i);
            within(failures, c + " qmatmul_naive", wantY, deviceMatmul(gpu, w, x, t, true), magY, i);
            if (t > 1) {  // matmul with one token is the GEMV; make sure the tiled kernel sees one token too
                float[] one = new float[o];
                try (DeviceBuffer dx = DeviceBuffer.of(cuda, java.util.Arrays.copyOf(x, i));
                     DeviceBuffer dyb = DeviceBuffer.allocate(cuda, (long) o * 4)) {
                    gpu.module().matmul(w, dx.pointer(), 1, dyb.pointer(), false);
                    cuda.copyToHost(dyb.pointer(), one, 0, o);
                }
                within(failures, c + " qmatmul (T=1)", java.util.Arrays.copyOf(wantY, o), one,
                        java.util.Arrays.copyOf(magY, o), i);
            }

            float[] wantG = new float[o];
            ref.gemv(rw, x, 0, wantG, 0);
            float[] gotG = new float[o];
            gpu.gemv(w, x, 0, gotG, 0);
            within(failures, c + " gemv", wantG, gotG, java.util.Arrays.copyOf(magY, o), i);
            for (int slices : new int[] {1, 7, 32, 33, 64}) {  // the launcher's slice count is a tuning knob: all must agree
                float[] sliced = new float[o];
                try (DeviceBuffer dx = DeviceBuffer.of(cuda, java.util.Arrays.copyOf(x, i));
                     DeviceBuffer dyb = DeviceBuffer.allocate(cuda, (long) o * 4)) {
                    gpu.module().gemv(w, dx.pointer(), dyb.pointer(), slices);
                    cuda.copyToHost(dyb.pointer(), sliced, 0, o);
                }
                within(failures, c + " gemv (" + slices + " slices)", wantG, sliced,
                        java.util.Arrays.copyOf(magY, o), i);
            }

            float[] magX = magnitudeX(dy, absQz, t, o, i, null);
            float[] wantX = new float[t * i];
            ref.matmulTransposed(rw, dy, 0, t, wantX, 0, false);
            float[] gotX = new float[t * i];
            gpu.matmulTransposed(w, dy, 0, t, gotX, 0, false);
            within(failures, c + " matmulTransposed", wantX, gotX, magX, o);
            within(failures, c + " qmatmul_t (fused, direct)", wantX, deviceTransposed(gpu, w, dy, t, null, false),
                    magX, o);
            within(failures, c + " qmatmul_t_naive", wantX, deviceTransposed(gpu, w, dy, t, null, true), magX, o);

            float[] magAcc = magnitudeX(dy, absQz, t, o, i, dx0);
            float[] wantAcc = dx0.clone();
            ref.matmulTransposed(rw, dy, 0, t, wantAcc, 0, true);
            float[] gotAcc = dx0.clone();
            gpu.matmulTransposed(w, dy, 0, t, gotAcc, 0, true);
            within(failures, c + " matmulTransposed(accumulate)", wantAcc, gotAcc, magAcc, o + 1);
            within(failures, c + " qmatmul_t (fused, direct, accumulate)", wantAcc,
                    deviceTransposed(gpu, w, dy, t, dx0, false), magAcc, o + 1);
            within(failures, c + " qmatmul_t_naive(accumulate)", wantAcc, deviceTransposed(gpu, w, dy, t, dx0, true),
                    magAcc, o + 1);
        }
        return failures;
    }

    /** A merged weight (new real-valued zeros) shares codes and scales on the device and still computes right. */
    public static List<String> checkWithZeros(CudaQuantKernels gpu) {
        List<String> failures = new ArrayList<>();
        Random random = new Random(5);
        QuantizedMatrix m = randomMatrix(random, 67, 256, 4, 64);
        float[] newZeros = new float[m.zeros().length];
        for (int e = 0; e < newZeros.length; e++) {
            newZeros[e] = m.zeros()[e] + 0.37f * (float) random.nextGaussian();
        }
        CudaPreparedWeight w = gpu.prepare(m);
        CudaPreparedWeight merged = gpu.withZeros(w, newZeros);
        ReferenceQuantKernels ref = new ReferenceQuantKernels();
        float[] want = new float[67 * 256];
        ref.dequantize(ref.prepare(m.withZeros(newZeros)), want);
        float[] got = new float[67 * 256];
        gpu.dequantize(merged, got);
        exact(failures, "withZeros dequantize", want, got);
        if (merged.q() != w.q() || merged.scales() != w.scales() || merged.zeros() == w.zeros()) {
            failures.add("withZeros should share codes and scales and upload new zeros");
        }
        float[] orig = new float[67 * 256];
        ref.dequantize(ref.prepare(m), want);
        gpu.dequantize(w, orig);
        exact(failures, "original after withZeros", want, orig);
        merged.close();  // frees the shared codes too: the original is not used after this
        return failures;
    }

    private static float[] deviceMatmul(CudaQuantKernels gpu, CudaPreparedWeight w, float[] x, int t, boolean naive) {
        CudaDriver cuda = gpu.module().driver();
        float[] y = new float[t * w.out()];
        try (DeviceBuffer dx = DeviceBuffer.of(cuda, x); DeviceBuffer dy = DeviceBuffer.allocate(cuda, y.length * 4L)) {
            gpu.module().matmul(w, dx.pointer(), t, dy.pointer(), naive);
            cuda.copyToHost(dy.pointer(), y, 0, y.length);
        }
        return y;
    }

    private static float[] deviceTransposed(CudaQuantKernels gpu, CudaPreparedWeight w, float[] dy, int t,
                                            float[] accumulateInto, boolean naive) {
        CudaDriver cuda = gpu.module().driver();
        float[] dx = accumulateInto == null ? new float[t * w.in()] : accumulateInto.clone();
        try (DeviceBuffer ddy = DeviceBuffer.of(cuda, dy); DeviceBuffer ddx = DeviceBuffer.of(cuda, dx)) {
            gpu.module().matmulTransposed(w, ddy.pointer(), t, ddx.pointer(), accumulateInto != null, naive);
            cuda.copyToHost(ddx.pointer(), dx, 0, dx.length);
        }
        return dx;
    }

    // [O, I]: scale * (|q| + |z|), the size of each term's pieces before cancellation.
    private static float[] absCodePlusZero(QuantizedMatrix m) {
        int o = m.outFeatures(), in = m.inFeatures();
        int[] codes = m.codes();
        float[] r = new float[o * in];
        for (int a = 0; a < o; a++) {
            for (int b = 0; b < in; b++) {
                int k = b / m.groupSize();
                r[a * in + b] = Math.abs(m.scale(k, a)) * (codes[a * in + b] + Math.abs(m.zero(k, a)));
            }
        }
        return r;
    }

    // [T, O]: sum_i |x[t, i]| * absQz[o, i]
    private static float[] magnitudeY(float[] x, float[] absQz, int t, int o, int in) {
        float[] mag = new float[t * o];
        for (int a = 0; a < t; a++) {
            for (int b = 0; b < o; b++) {
                double s = 0;
                for (int c = 0; c < in; c++) {
                    s += Math.abs(x[a * in + c]) * absQz[b * in + c];
                }
                mag[a * o + b] = (float) s;
            }
        }
        return mag;
    }

    // [T, I]: sum_o |dy[t, o]| * absQz[o, i] (+ |dx0[t, i]| when accumulating)
    private static float[] magnitudeX(float[] dy, float[] absQz, int t, int o, int in, float[] dx0) {
        float[] mag = new float[t * in];
        for (int a = 0; a < t; a++) {
            for (int c = 0; c < in; c++) {
                double s = dx0 == null ? 0 : Math.abs(dx0[a * in + c]);
                for (int b = 0; b < o; b++) {
                    s += Math.abs(dy[a * o + b]) * absQz[b * in + c];
                }
                mag[a * in + c] = (float) s;
            }
        }
        return mag;
    }

    static void exact(List<String> failures, String what, float[] want, float[] got) {
        for (int e = 0; e < want.length; e++) {
            if (Float.floatToIntBits(want[e]) != Float.floatToIntBits(got[e])) {
                failures.add(what + ": element " + e + " is " + got[e] + ", reference " + want[e] + " (must be exact)");
                return;
            }
        }
    }

    static void within(List<String> failures, String what, float[] want, float[] got, float[] magnitude,
                               int k) {
        for (int e = 0; e < want.length; e++) {
            double bound = 2.0 * k * U * magnitude[e] + 1e-30;
            double error = Math.abs((double) got[e] - want[e]);
            if (!(error <= bound)) {
                failures.add(what + ": element " + e + " is " + got[e] + ", reference " + want[e] + " (error "
                        + error + " > bound " + bound + ")");
                return;
            }
        }
    }
}
