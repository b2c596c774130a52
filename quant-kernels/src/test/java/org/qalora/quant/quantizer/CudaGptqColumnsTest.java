package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.CudaGptqColumns;
import org.qalora.quant.cuda.CudaGptqSolve;

/**
 * GPTQ's column stage on the GPU ({@link CudaGptqColumns}) against the CPU's ({@link CpuGptqColumns} on the Vector
 * API kernels, the default): the same codes, scales and zeros, bit for bit (floats compared by their raw bits, so
 * -0.0 and +0.0 differ), given the same inverse-Hessian factor. Where the column stage is called directly, the final
 * global W (after every lazy update) is compared too: codes are too coarse to show a one-ulp difference in an error
 * or an update (an FMA where the CPU rounds the product, emulated on the CPU, changed no code of a [64, 1024] layer,
 * and 27% of the final W of a [7, 300] one), W shows every one. Covered: bits 2, 3, 4, 8; group sizes 32, 64, 128 and
 * whole rows; groups computed at group starts (the reference's quirk) and static groups, with act-order; symmetric and
 * not; dead inputs; widths that are not multiples of the 128-column block, heights that are not multiples of the
 * 128-row tile or of a warp's 8 rows, groups smaller than a warp and groups that straddle blocks (the column stage
 * alone takes any shape; {@link GptqQuantizer} needs multiples of 32); weights that hit rounding ties, all-zero and
 * all-negative-zero rows, ranges below fp16's smallest step; a rerun; the two LLaMA-7B shapes (timed, printed as
 * {@code GPU gptq columns ...}). Skipped, with the reason, where no GPU can run GPTQ's GPU stages; the option's
 * tests run everywhere.
 */
class CudaGptqColumnsTest {
    private static void requireGpu() {
        String why = GptqSolve.gpuUnusableReason(0);
        assumeTrue(why == null, () -> "GPU GPTQ unavailable, skipped: " + why);
    }

    /** The column stage alone, at shapes {@link GptqQuantizer} would refuse (not multiples of 32). */
    @ParameterizedTest(name = "[{0} x {1}] g{2} {3}-bit sym={4} static={5} act-order={6}")
    @CsvSource({
        "1, 96, 32, 4, false, false, false",
        "7, 160, 32, 3, true, false, false",
        "300, 1000, 40, 2, false, false, false",      // groups straddle blocks
        "300, 1000, 1000, 8, false, false, false",    // whole rows: blocks after the first read the group's params
        "33, 1000, 125, 4, true, true, true",         // static groups in act-order
        "7, 96, 96, 4, false, true, false",
        "130, 384, 128, 4, false, false, false",
        "129, 200, 8, 2, false, false, false",        // groups smaller than a warp
        "2, 129, 129, 3, false, false, false",        // a last block of one column
        "5, 1, 1, 4, false, false, false",
    })
    void columnStageMatchesTheCpuAtAnyShape(int out, int in, int group, int bits, boolean sym, boolean staticGroups,
                                            boolean actOrder) {
        requireGpu();
        long seed = out * 1_000_003L + in * 31L + group;
        int[] dead = in > 4 ? new int[] {0, in / 2} : new int[0];
        Hessian h = hessian(in, Math.max(64, 2 * in), seed, dead);
        GptqQuantizer q = new GptqQuantizer(bits, group, sym, actOrder, staticGroups || actOrder, 0.01);
        GptqQuantizer.InverseHessian prepared = q.prepare(h, "w");
        GptqColumns.Problem p = problem(gaussian(out * in, seed, 0.05f), out, in, group, bits, sym,
                staticGroups || actOrder, prepared);
        GptqColumns.Problem cpuProblem = copy(p);
        int[] cpu = CpuGptqColumns.DEFAULT.quantize(cpuProblem, "w");
        GptqColumns.Problem gpuProblem = copy(p);
        int[] gpu = CudaGptqColumns.returningWeights(0).quantize(gpuProblem, "w");
        assertSameResult(cpu, cpuProblem, gpu, gpuProblem, "[" + out + " x " + in + "]");
        GptqColumns.Problem again = copy(p);
        assertSameResult(gpu, gpuProblem, CudaGptqColumns.returningWeights(0).quantize(again, "w"), again, "rerun");
    }

    static Stream<Arguments> grid() {
        List<Arguments> cases = new ArrayList<>();
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int group : new int[] {32, 64, 128, -1}) {
                for (String mode : new String[] {"dynamic", "static", "act-order"}) {
                    cases.add(Arguments.of(bits, group, mode));
                }
            }
        }
        return cases.stream();
    }

    /**
     * Whole GPTQ through {@link GptqQuantizer} with each column stage, one prepared factor: 8.25 to 9 blocks of
     * columns (1056, 1088, 1152, 1120 inputs by group size) and 96 or 320 rows, 3 dead inputs.
     */
    @ParameterizedTest(name = "{0}-bit g{1} {2}")
    @MethodSource("grid")
    void gptqMatchesTheCpuBitForBit(int bits, int group, String mode) {
        requireGpu();
        int in = switch (group) {
            case 32 -> 1056;
            case 64 -> 1088;
            case 128 -> 1152;
            default -> 1120;
        };
        int out = bits == 4 ? 320 : 96;
        boolean sym = bits == 3 || group == 64;
        boolean actOrder = mode.equals("act-order");
        long seed = bits * 1000L + group + mode.length();
        Hessian h = hessian(in, 2 * in, seed, 5, in / 3, in - 1);
        GptqQuantizer cpu = new GptqQuantizer(bits, group, sym, actOrder, !mode.equals("dynamic"), 0.01);
        float[] w = gaussian(out * in, seed, 0.02f);
        String what = bits + "-bit g" + group + " " + mode;
        compare(cpu, w, out, in, h, what);
        // The same problem handed to the column stages directly, the final W compared as well.
        GptqColumns.Problem p = problem(w, out, in, group, bits, sym, !mode.equals("dynamic"), cpu.prepare(h, "w"));
        GptqColumns.Problem cpuProblem = copy(p);
        GptqColumns.Problem gpuProblem = copy(p);
        assertSameResult(CpuGptqColumns.DEFAULT.quantize(cpuProblem, "w"), cpuProblem,
                CudaGptqColumns.returningWeights(0).quantize(gpuProblem, "w"), gpuProblem, what + ", direct");
    }

    /**
     * Weights chosen to hit the edges of the arithmetic: an all-zero row (the [-1, 1] range), a row of -0.0, a row of
     * 1e-9 (a step below fp16's smallest subnormal), rows on a 1/32 grid with the range [-0.5, 0.4375] (4-bit step
     * exactly 1/16, so codes land on rounding ties), and a dead input.
     */
    @ParameterizedTest(name = "{0}-bit g{1} sym={2}")
    @CsvSource({"4, 32, false", "4, 32, true", "2, -1, false", "4, -1, true", "8, 64, false"})
    void edgeValuesMatchTheCpu(int bits, int group, boolean sym) {
        requireGpu();
        int out = 64;
        int in = 256;
        Random rnd = new Random(bits * 7L + group);
        float[] w = new float[out * in];
        for (int i = 0; i < in; i++) {
            w[in + i] = -0.0f;
            w[2 * in + i] = (float) rnd.nextGaussian() * 1e-9f;
        }
        for (int o = 3; o < out; o++) {
            for (int i = 0; i < in; i++) {
                w[o * in + i] = switch (i % 32) {
                    case 0 -> -0.5f;
                    case 1 -> 0.4375f;
                    default -> (rnd.nextInt(31) - 16) / 32f;
                };
            }
        }
        Hessian h = hessian(in, 300, group + 3L, 17);
        compare(new GptqQuantizer(bits, group, sym, false, false, 0.01), w, out, in, h,
                "edge values " + bits + "-bit g" + group);
    }

    /** The two LLaMA-7B shapes: q/k/v/o (and gate/up's input width) and down_proj, 4-bit g32, factor from cuSOLVER. */
    @ParameterizedTest(name = "[{0} x {1}]")
    @CsvSource({"4096, 4096", "4096, 11008"})
    void llamaShapesMatchTheCpu(int out, int in) {
        requireGpu();
        Hessian h = hessian(in, 256, in, 3, in / 2);
        GptqQuantizer cpu = new GptqQuantizer(4, 32, false, false, false, 0.01).withSolver(new CudaGptqSolve(0));
        compare(cpu, gaussian(out * in, in + 1L, 0.02f), out, in, h, "[" + out + " x " + in + "]");
    }

    // ---- everywhere, GPU or not ----------------------------------------------------------------------------------

    @Test
    void theCpuChoiceKeepsBothStagesOnTheCpu() {
        GptqDevice d = GptqSolve.CPU.device(0);
        assertSame(InverseFactorSolver.CPU, d.solver());
        assertSame(CpuGptqColumns.DEFAULT, d.columns());
        assertEquals(GptqDevice.CPU, d);
    }

    @Test
    void aGpuColumnStageWithoutAGpuIsRefusedWithTheReason() {
        String why = CudaGptqColumns.unusableReason(0);
        assumeTrue(why != null, "a GPU is usable here: nothing to refuse");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> GptqSolve.GPU.columns(0));
        assertTrue(e.getMessage().contains(why) && e.getMessage().contains("--gptq-solve cpu"), e.getMessage());
        assertTrue(GptqSolve.gpuUnusableReason(0) != null);
    }

    @Test
    void aProblemWhoseArraysDoNotFitIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new GptqColumns.Problem(2, 64, 32, 15, false, false,
                new int[64], new float[2 * 64], new float[64 * 64], new float[3], new float[4]));
        assertThrows(IllegalArgumentException.class, () -> new GptqColumns.Problem(2, 64, 48, 15, false, false,
                new int[64], new float[2 * 64], new float[64 * 64], new float[2], new float[2]));
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    /** Quantizes with {@code cpu} and with its GPU twin (same factor, one {@code prepare}); asserts the same bits. */
    private static void compare(GptqQuantizer cpu, float[] w, int out, int in, Hessian h, String what) {
        GptqQuantizer gpu = cpu.withColumns(new CudaGptqColumns(0));
        GptqQuantizer.InverseHessian prepared = cpu.prepare(h, "w");
        long t0 = System.nanoTime();
        QuantizedMatrix a = cpu.quantize(w, out, in, prepared, "w");
        long t1 = System.nanoTime();
        QuantizedMatrix b = gpu.quantize(w, out, in, prepared, "w");
        long t2 = System.nanoTime();
        if ((long) out * in >= 1L << 22) {
            System.out.printf(Locale.ROOT, "GPU gptq columns %s: cpu %.3f s, gpu %.3f s (%.1fx), codes identical: %s%n",
                    what, (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t1 - t0) / (double) (t2 - t1),
                    java.util.Arrays.equals(a.qweight(), b.qweight()));
        }
        assertArrayEquals(a.qweight(), b.qweight(), what + ": packed codes");
        assertArrayEquals(bits(a.scales()), bits(b.scales()), what + ": scales");
        assertArrayEquals(bits(a.zeros()), bits(b.zeros()), what + ": zeros");
    }

    private static void assertSameResult(int[] codesA, GptqColumns.Problem a, int[] codesB, GptqColumns.Problem b,
                                         String what) {
        assertArrayEquals(codesA, codesB, what + ": codes");
        assertArrayEquals(bits(a.scales()), bits(b.scales()), what + ": scales");
        assertArrayEquals(bits(a.zeros()), bits(b.zeros()), what + ": zeros");
        assertArrayEquals(bits(a.w()), bits(b.w()), what + ": the final W (every lazy update)");
    }

    /** The problem {@link GptqQuantizer#quantize} hands its column stage: dead inputs zeroed, permuted, groups. */
    private static GptqColumns.Problem problem(float[] weight, int out, int in, int group, int bits, boolean sym,
                                               boolean staticGroups, GptqQuantizer.InverseHessian prepared) {
        int g = group == -1 ? in : group;
        int maxq = (1 << bits) - 1;
        float[] w = weight.clone();
        for (int i = 0; i < in; i++) {
            if (prepared.dead()[i]) {
                for (int o = 0; o < out; o++) {
                    w[o * in + i] = 0;
                }
            }
        }
        float[] scales = new float[in / g * out];
        float[] zeros = new float[in / g * out];
        if (staticGroups) {
            for (int k = 0; k < in / g; k++) {
                MinMaxParams.ofColumns(w, out, in, k * g, g, maxq, sym, scales, zeros, k);
            }
        }
        int[] perm = prepared.perm();
        float[] permuted = new float[w.length];
        int[] groupOf = new int[in];
        for (int c = 0; c < in; c++) {
            for (int o = 0; o < out; o++) {
                permuted[o * in + c] = w[o * in + perm[c]];
            }
            groupOf[c] = (staticGroups ? perm[c] : c) / g;
        }
        return new GptqColumns.Problem(out, in, g, maxq, sym, staticGroups, groupOf, permuted, prepared.u(), scales,
                zeros);
    }

    private static GptqColumns.Problem copy(GptqColumns.Problem p) {
        return new GptqColumns.Problem(p.out(), p.in(), p.groupSize(), p.maxq(), p.sym(), p.staticGroups(),
                p.groupOf().clone(), p.w().clone(), p.u().clone(), p.scales().clone(), p.zeros().clone());
    }

    private static Hessian hessian(int in, int tokens, long seed, int... dead) {
        float[] x = GptqQuantizerTest.activations(tokens, in, seed);  // [tokens, in]
        for (int d : dead) {
            for (int t = 0; t < tokens; t++) {
                x[t * in + d] = 0;
            }
        }
        Hessian h = new Hessian(in);
        h.add(x, tokens, 1);
        return h;
    }

    private static float[] gaussian(int n, long seed, float scale) {
        Random rnd = new Random(seed);
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (float) rnd.nextGaussian() * scale;
        }
        return w;
    }

    private static int[] bits(float[] values) {
        int[] b = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = Float.floatToRawIntBits(values[i]);
        }
        return b;
    }
}
