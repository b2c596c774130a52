package org.qalora.quant.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;

/**
 * The split-K decode GEMVs ({@link SplitKGemv}, called directly: {@link QuantKernelModule}'s bf16 GEMVs route to them
 * only with {@code -Dqalora.cuda.splitKGemv=true}) against a
 * float64 reference on the host (the naive sum of bf16 x times each weight as {@link QuantizedMatrix#weight} gives
 * it), for bits 2/3/4/8, group sizes 32/64/128, one split and many (inputs of 1 to 344 chunks of 32, the last split
 * short), outputs that end inside a 128-column tile; then the properties the decode relies on: the fused launches
 * (three weights, residual, SwiGLU) write the bits of the single-weight launch, and relaunching (the split counters
 * reset themselves) repeats the bits. Skipped without a GPU.
 */
class CudaSplitKGemvTest {
    private static CudaQuantKernels gpu;
    private static final List<AutoCloseable> OPEN = new ArrayList<>();

    @BeforeAll
    static void open() {
        if (CudaQuantKernels.available()) {
            gpu = new CudaQuantKernels();
        }
    }

    @AfterAll
    static void close() throws Exception {
        for (AutoCloseable c : OPEN) {
            c.close();
        }
        if (gpu != null) {
            gpu.close();
        }
    }

    private static void requireGpu() {
        assumeTrue(gpu != null, () -> "CUDA unavailable, skipped: " + CudaQuantKernels.unavailableReason());
    }

    @Test
    void matchesTheFloat64ReferenceAcrossBitsGroupsAndSplits() {
        requireGpu();
        Random random = new Random(11);
        int[][] shapes = {{4, 32}, {132, 544}, {260, 1152}, {516, 11008}, {4096, 4096}};  // {out, in}
        List<String> failures = new ArrayList<>();
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int group : new int[] {32, 64, 128}) {
                for (int[] s : shapes) {
                    if (s[1] % group != 0 || (s[0] * (long) s[1] > 1 << 22 && bits != 4)) {
                        continue;  // the largest shapes at 4 bits only, to keep the test short
                    }
                    QuantizedMatrix m = CudaParity.randomMatrix(random, s[0], s[1], bits, group);
                    CudaPreparedWeight w = prepared(m);
                    assertTrue(SplitKGemv.takes(w, 0), "the split-K GEMV takes " + m);
                    float[] x = bf16Input(random, s[1]);
                    long dx = upload(x), dy = deviceBytes(2L * s[0]);
                    splitK().gemv(new CudaPreparedWeight[] {w}, dx, new long[] {dy});
                    float[] got = downloadBf16(dy, s[0]);
                    compare(failures, bits + " bits, group " + group + ", " + s[0] + " x " + s[1], m, x, got);
                }
            }
        }
        assertTrue(failures.isEmpty(), () -> String.join("\n", failures));
    }

    @Test
    void fusedLaunchesWriteTheSingleLaunchBitsAndRelaunchesRepeatThem() {
        requireGpu();
        Random random = new Random(12);
        for (int in : new int[] {256, 1056, 11008}) {  // 1, 2 and 11 splits at 32 chunks a split (1, 3, 22 at 16)
            int o = 516;
            CudaPreparedWeight a = prepared(CudaParity.randomMatrix(random, o, in, 4, 32));
            CudaPreparedWeight b = prepared(CudaParity.randomMatrix(random, 8, in, 4, 32));
            CudaPreparedWeight c = prepared(CudaParity.randomMatrix(random, o, in, 4, 32));
            long x = upload(bf16Input(random, in));
            long ya = deviceBytes(2L * o), yb = deviceBytes(2L * 8), yc = deviceBytes(2L * o);
            splitK().gemv(new CudaPreparedWeight[] {a}, x, new long[] {ya});
            splitK().gemv(new CudaPreparedWeight[] {b}, x, new long[] {yb});
            splitK().gemv(new CudaPreparedWeight[] {c}, x, new long[] {yc});
            float[] wantA = downloadBf16(ya, o), wantB = downloadBf16(yb, 8), wantC = downloadBf16(yc, o);
            for (int repeat = 0; repeat < 3; repeat++) {
                long fa = deviceBytes(2L * o), fb = deviceBytes(2L * 8), fc = deviceBytes(2L * o);
                splitK().gemv(new CudaPreparedWeight[] {a, b, c}, x, new long[] {fa, fb, fc});
                String what = in + " inputs, fused three, launch " + repeat;
                assertArrayEquals(wantA, downloadBf16(fa, o), what + ": first weight");
                assertArrayEquals(wantB, downloadBf16(fb, 8), what + ": second weight");
                assertArrayEquals(wantC, downloadBf16(fc, o), what + ": third weight");
            }

            float[] residual = bf16Input(random, o);
            DeviceBuffer r32Buffer = DeviceBuffer.of(gpu.module().driver(), residual);
            OPEN.add(r32Buffer);
            long r32 = r32Buffer.pointer(), out32 = deviceBytes(4L * o);
            splitK().gemvResidual(a, x, true, r32, false, out32, false);
            float[] sum = download(out32, o);
            for (int e = 0; e < o; e++) {
                assertEquals(residual[e] + wantA[e], sum[e], 0f, "residual + product, column " + e + ", " + in);
            }

            long act = deviceBytes(2L * o);
            splitK().gemvSwiglu(a, c, x, act);
            float[] got = downloadBf16(act, o);
            for (int e = 0; e < o; e++) {
                float z = wantA[e];
                float want = bf16(z / (1f + (float) Math.exp(-z)) * wantC[e]);  // expf vs exp: one bf16 step at most
                assertEquals(want, got[e], Math.abs(want) / 128 + 1e-30f, "swiglu column " + e + ", " + in + " inputs");
            }
        }
    }

    /** With the routing on ({@code -Dqalora.cuda.splitKGemv=true}) or off, these stay on the slice GEMV. */
    @Test
    void weightsItCannotTakeGoToTheSliceGemv() {
        requireGpu();
        Random random = new Random(13);
        QuantizedMatrix odd = CudaParity.randomMatrix(random, 67, 96, 4, 32), group48 =
                CudaParity.randomMatrix(random, 64, 96, 4, 48);
        for (QuantizedMatrix m : new QuantizedMatrix[] {odd, group48}) {
            CudaPreparedWeight w = prepared(m);
            assertFalse(SplitKGemv.takes(w, 0), m.toString());
            float[] x = bf16Input(random, m.inFeatures());
            long dy = deviceBytes(2L * m.outFeatures());
            gpu.module().gemvBf16(w, upload(x), dy);
            List<String> failures = new ArrayList<>();
            compare(failures, m.toString(), m, x, downloadBf16(dy, m.outFeatures()));
            assertTrue(failures.isEmpty(), () -> String.join("\n", failures));
        }
    }

    /** Within one bf16 rounding of the float64 sum, plus fp32 accumulation error (relative to sum |w x|). */
    private static void compare(List<String> failures, String what, QuantizedMatrix m, float[] x, float[] got) {
        for (int o = 0; o < m.outFeatures(); o++) {
            double want = 0, magnitude = 0;
            for (int i = 0; i < m.inFeatures(); i++) {
                double t = (double) m.weight(o, i) * x[i];
                want += t;
                magnitude += Math.abs(t);
            }
            double bound = Math.abs(want) / 256 + 1e-5 * magnitude;
            if (!(Math.abs(got[o] - want) <= bound)) {
                failures.add(what + ": column " + o + " got " + got[o] + ", want " + want + " (bound " + bound + ")");
                return;
            }
        }
    }

    private static SplitKGemv splitK() {
        return gpu.module().splitKGemv();
    }

    private static CudaPreparedWeight prepared(QuantizedMatrix m) {
        CudaPreparedWeight w = gpu.prepare(m);
        OPEN.add(w);
        return w;
    }

    /** Gaussian values already rounded to bf16, so the host reference and the device read the same inputs. */
    private static float[] bf16Input(Random random, int n) {
        float[] v = CudaParity.randomVector(random, n);
        for (int e = 0; e < n; e++) {
            v[e] = bf16(v[e]);
        }
        return v;
    }

    static float bf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        return Float.intBitsToFloat((bits + 0x7FFF + ((bits >>> 16) & 1)) & 0xFFFF0000);
    }

    /** {@code v} (bf16 values) as a device bf16 vector. */
    private static long upload(float[] v) {
        DeviceBuffer f = DeviceBuffer.of(gpu.module().driver(), v);
        OPEN.add(f);
        long out = deviceBytes(2L * v.length);
        gpu.module().toBf16(f.pointer(), out, v.length);
        return out;
    }

    private static long deviceBytes(long bytes) {
        DeviceBuffer b = DeviceBuffer.allocate(gpu.module().driver(), bytes);
        OPEN.add(b);
        return b.pointer();
    }

    private static float[] downloadBf16(long pointer, int n) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(2L * n);
            gpu.module().driver().copyToHost(pointer, host);
            float[] v = new float[n];
            for (int e = 0; e < n; e++) {
                v[e] = Float.intBitsToFloat((host.getAtIndex(ValueLayout.JAVA_SHORT, e) & 0xFFFF) << 16);
            }
            return v;
        }
    }

    private static float[] download(long pointer, int n) {
        float[] v = new float[n];
        gpu.module().driver().copyToHost(pointer, v, 0, n);
        return v;
    }
}
