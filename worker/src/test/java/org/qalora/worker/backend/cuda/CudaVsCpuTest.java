package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import org.qalora.worker.model.TinyModels;

/**
 * The GPU against the CPU backend (the naive reference of the contract) on random inputs: the low-bit products for
 * every bit width, attention with GQA, dropout masks and AdamW (bit for bit), and a whole model's logits and adapter
 * gradients in fp32 (tight) and bf16 (the mixed-precision bounds of CudaBf16FixtureParityTest). Skipped without a GPU.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CudaVsCpuTest {
    private CpuBackend cpu;
    private CudaBackend fp32;
    private CudaBackend bf16;
    private final SplittableRandom rng = new SplittableRandom(11);

    @BeforeAll
    void open() {
        fp32 = CudaTestSupport.backendOrSkip(Precision.FP32);
        bf16 = new CudaBackend(0, Precision.BF16);
        cpu = new CpuBackend(2);
    }

    @AfterAll
    void close() {
        for (Backend b : new Backend[] {cpu, fp32, bf16}) {
            if (b != null) {
                b.close();
            }
        }
    }

    private float[] randn(int n) { return TinyModels.gaussian(rng, n, 1.0); }

    @Test
    void quantizedProductsAllBitWidthsAndGroups() {
        for (int bits : new int[] {2, 3, 4, 8}) {
            for (int group : new int[] {32, 64, 128}) {
                int out = 131, in = 384;
                QuantizedMatrix q = TinyModels.randomQuantized(rng, out, in, bits, group, 0.05);
                for (int n : new int[] {17, 1}) { // 1 row (a decode step) takes the fused GEMV
                    String what = " b" + bits + " g" + group + " rows " + n;
                    float[] x = randn(n * in), dy = randn(n * out);
                    float[] want = linear(cpu, q, x, n), wantDx = linearBack(cpu, q, dy, n);
                    check("fp32 linear" + what, linear(fp32, q, x, n), want, 1e-5);
                    check("fp32 linear backward" + what, linearBack(fp32, q, dy, n), wantDx, 1e-5);
                    check("bf16 linear" + what, linear(bf16, q, x, n), want, 1e-2);
                    check("bf16 linear backward" + what, linearBack(bf16, q, dy, n), wantDx, 1e-2);
                }
            }
        }
    }

    @Test
    void bf16DequantizeIsTheFp32DequantizeRoundedToNearestEven() {
        org.qalora.quant.cuda.QuantKernelModule k = org.qalora.quant.cuda.QuantKernelModule.get(0);
        org.qalora.quant.cuda.CudaDriver cuda = fp32.driver();
        for (int bits : new int[] {2, 3, 4, 8}) {
            QuantizedMatrix q = TinyModels.randomQuantized(rng, 67, 384, bits, 32, 0.05);
            var w = (CudaLinearWeight.Quantized) fp32.quantizedWeight(q);
            long n = 67L * 384;
            try (var f32 = org.qalora.quant.cuda.DeviceBuffer.allocate(cuda, 4 * n);
                 var viaF32 = org.qalora.quant.cuda.DeviceBuffer.allocate(cuda, 2 * n);
                 var direct = org.qalora.quant.cuda.DeviceBuffer.allocate(cuda, 2 * n)) {
                k.dequantize(w, f32.pointer(), false);
                k.toBf16(f32.pointer(), viaF32.pointer(), n);
                k.dequantizeBf16(w, direct.pointer());
                short[] a = new short[(int) n], b = new short[(int) n];
                cuda.copyToHost(viaF32.pointer(), java.lang.foreign.MemorySegment.ofArray(a));
                cuda.copyToHost(direct.pointer(), java.lang.foreign.MemorySegment.ofArray(b));
                org.junit.jupiter.api.Assertions.assertArrayEquals(a, b, "dequantize_bf16, " + bits + " bits");
            }
        }
    }

    private static float[] linear(Backend be, QuantizedMatrix q, float[] x, int n) {
        LinearWeight w = be.quantizedWeight(q);
        Tensor xt = be.allocateActivation(n, q.inFeatures()), y = be.allocateActivation(n, q.outFeatures());
        be.write(xt, x);
        be.linear(xt, w, y);
        return be.download(y);
    }

    private static float[] linearBack(Backend be, QuantizedMatrix q, float[] dy, int n) {
        LinearWeight w = be.quantizedWeight(q);
        Tensor d = be.allocateActivation(n, q.outFeatures()), dx = be.allocateActivation(n, q.inFeatures());
        be.write(d, dy);
        be.linearBackwardInput(d, w, dx, true);
        return be.download(dx);
    }

    @Test
    void attentionWithGroupedHeadsForwardAndBackward() {
        AttentionShape s = new AttentionShape(3, 37, 8, 2, 16);
        int n = s.tokens();
        float[] q = randn(n * s.queryWidth()), k = randn(n * s.kvWidth()), v = randn(n * s.kvWidth());
        float[] dOut = randn(n * s.queryWidth());
        float[][] want = attention(cpu, s, q, k, v, dOut);
        String[] names = {"out", "dq", "dk", "dv"};
        for (int blocks : new int[] {1, 2, 3, 4}) { // 3 leaves a short last block (37 = 13 + 13 + 11)
            fp32.attentionBlocks(blocks);
            bf16.attentionBlocks(blocks);
            float[][] got32 = attention(fp32, s, q, k, v, dOut), got16 = attention(bf16, s, q, k, v, dOut);
            for (int i = 0; i < 4; i++) {
                check("fp32 attention, " + blocks + " causal blocks, " + names[i], got32[i], want[i], 1e-5);
                check("bf16 attention, " + blocks + " causal blocks, " + names[i], got16[i], want[i], 3e-2);
            }
        }
        fp32.attentionBlocks(CudaBackend.DEFAULT_ATTENTION_BLOCKS);
        bf16.attentionBlocks(CudaBackend.DEFAULT_ATTENTION_BLOCKS);
    }

    /** Forward and backward of attention on {@code be}: {out, dq, dk, dv}. Shared with CudaFlashAttentionTest. */
    static float[][] attention(Backend be, AttentionShape s, float[] q, float[] k, float[] v, float[] dOut) {
        int n = s.tokens();
        Tensor qt = be.allocateActivation(n, s.queryWidth()), kt = be.allocateActivation(n, s.kvWidth()),
                vt = be.allocateActivation(n, s.kvWidth()), d = be.allocateActivation(n, s.queryWidth());
        be.write(qt, q);
        be.write(kt, k);
        be.write(vt, v);
        be.write(d, dOut);
        Tensor state = be.attentionState(s), out = be.allocateActivation(n, s.queryWidth());
        be.attention(qt, kt, vt, s, state, out);
        Tensor dq = be.allocateActivation(n, s.queryWidth()), dk = be.allocateActivation(n, s.kvWidth()),
                dv = be.allocateActivation(n, s.kvWidth());
        be.attentionBackward(d, qt, kt, vt, state, s, dq, dk, dv);
        return new float[][] {be.download(out), be.download(dq), be.download(dk), be.download(dv)};
    }

    @Test
    void groupPoolingIsTheCpusBitForBitForEveryGroupSize() {
        int rows = 9;
        for (int g : new int[] {4, 8, 12, 32, 48, 64}) { // 4 and 12 take the scalar kernels, the rest 16-byte ones
            int in = g * 6, groups = 6;
            for (CudaBackend gpu : new CudaBackend[] {fp32, bf16}) {
                Tensor x = gpu.allocateActivation(rows, in), pooled = gpu.allocate(rows, groups);
                gpu.write(x, randn(rows * in));
                float[] xs = gpu.download(x); // as stored (bf16-rounded under mixed precision)
                gpu.groupPool(x, g, 1f / g, pooled);
                Tensor cx = cpu.upload(xs, rows, in), cp = cpu.allocate(rows, groups);
                cpu.groupPool(cx, g, 1f / g, cp);
                assertArrayEquals(cpu.download(cp), gpu.download(pooled), 0f, "groupPool g=" + g + " on " + gpu.name());
                float[] dy = randn(rows * groups);
                gpu.groupPoolBackward(gpu.upload(dy, rows, groups), g, 0.5f, x);
                cpu.groupPoolBackward(cpu.upload(dy, rows, groups), g, 0.5f, cx);
                float[] want = cpu.download(cx);
                if (gpu == bf16) {
                    Tensor rounded = gpu.allocateActivation(rows, in);
                    gpu.write(rounded, want); // the CPU's float sums, rounded as the GPU stores them
                    want = gpu.download(rounded);
                }
                assertArrayEquals(want, gpu.download(x), 0f, "groupPoolBackward g=" + g + " on " + gpu.name());
            }
        }
    }

    @Test
    void dropoutMasksAreTheCpusBitForBit() {
        for (Backend gpu : new Backend[] {fp32, bf16}) {
            float[] x = randn(5000);
            Tensor a = cpu.upload(x, 50, 100), ma = cpu.allocate(50, 100);
            Tensor b = gpu.upload(x, 50, 100), mb = gpu.allocate(50, 100);
            cpu.dropout(a, ma, 0.05f, 1234567L);
            gpu.dropout(b, mb, 0.05f, 1234567L);
            assertArrayEquals(cpu.download(ma), gpu.download(mb), 0f, "dropout mask on " + gpu.name());
            assertArrayEquals(cpu.download(a), gpu.download(b), 0f, "dropped values on " + gpu.name());
        }
    }

    @Test
    void fusedAdamwAndNormAreTheCpusBitForBit() {
        int[] sizes = {1, 300, 70000};
        List<Tensor> pc = new java.util.ArrayList<>(), gc = new java.util.ArrayList<>(), mc = new java.util.ArrayList<>(),
                vc = new java.util.ArrayList<>(), pg = new java.util.ArrayList<>(), gg = new java.util.ArrayList<>(),
                mg = new java.util.ArrayList<>(), vg = new java.util.ArrayList<>();
        for (int size : sizes) {
            float[] p = randn(size), g = randn(size), m = randn(size), v = randn(size);
            for (int i = 0; i < size; i++) {
                v[i] = Math.abs(v[i]);
            }
            pc.add(cpu.upload(p, size)); gc.add(cpu.upload(g, size)); mc.add(cpu.upload(m, size)); vc.add(cpu.upload(v, size));
            pg.add(fp32.upload(p, size)); gg.add(fp32.upload(g, size)); mg.add(fp32.upload(m, size)); vg.add(fp32.upload(v, size));
        }
        for (long step = 1; step <= 3; step++) {
            cpu.adamw(pc, gc, mc, vc, 0.7f, 2e-3, 0.9, 0.999, 1e-8, 0.01, step);
            fp32.adamw(pg, gg, mg, vg, 0.7f, 2e-3, 0.9, 0.999, 1e-8, 0.01, step);
        }
        for (int i = 0; i < sizes.length; i++) {
            assertArrayEquals(cpu.download(pc.get(i)), fp32.download(pg.get(i)), 0f, "AdamW parameter " + i);
            assertArrayEquals(cpu.download(vc.get(i)), fp32.download(vg.get(i)), 0f, "AdamW v " + i);
        }
        double a = cpu.sumOfSquares(gc), b = fp32.sumOfSquares(gg);
        assertTrue(Math.abs(a - b) <= 1e-12 * a, "sum of squares " + a + " vs " + b);
        Tensor bad = fp32.upload(new float[] {1f, Float.NaN}, 2);
        assertTrue(!fp32.allFinite(bad) && fp32.allFinite(gg.get(2)));
    }

    @Test
    void wholeModelLogitsAndAdapterGradients() {
        LlamaDims d = TinyModels.dims(1000, 256, 512, 2, 4, 2);
        QaloraConfig cfg = QaloraConfig.allProjections(16, 16, 32, Pooling.MEAN, 0.1);
        Map<String, float[]> init = QaloraAdapter.initialWeights(d, cfg, 5);
        SplittableRandom r = new SplittableRandom(3);
        for (float[] w : init.values()) {
            for (int i = 0; i < w.length; i++) {
                w[i] += (float) (0.02 * r.nextGaussian()); // B != 0, so every path carries gradient
            }
        }
        int batch = 2, seq = 40;
        int[] ids = TinyModels.ids(r, batch * seq, d.vocab()), labels = TinyModels.ids(r, batch * seq, d.vocab());
        float[][] want = pass(cpu, d, cfg, init, ids, labels, batch, seq);
        float[][] got32 = pass(fp32, d, cfg, init, ids, labels, batch, seq);
        float[][] got16 = pass(bf16, d, cfg, init, ids, labels, batch, seq);
        check("fp32 logits", got32[0], want[0], 1e-5);
        check("bf16 logits", got16[0], want[0], 3e-2);
        for (int i = 1; i < want.length; i++) {
            check("fp32 gradient " + i, got32[i], want[i], 1e-4);
            check("bf16 gradient " + i, got16[i], want[i], 6e-2);
        }
    }

    /** Logits, then every adapter gradient in key order, of one training pass (dropout on, recompute on). */
    private static float[][] pass(Backend be, LlamaDims d, QaloraConfig cfg, Map<String, float[]> init, int[] ids,
                                  int[] labels, int batch, int seq) {
        LlamaModel model = TinyModels.random(be, d, 4, 32, 77);
        QaloraAdapter qa = QaloraAdapter.create(model, cfg, init, true);
        ActivationPlan plan = new ActivationPlan(model, cfg, batch, seq, true, true);
        qa.zeroGradients();
        LlamaPass.forward(model, qa, plan, ids, 99, null);
        float[] logits = LlamaPass.logits(model, plan);
        int[] targets = LlamaPass.shiftedTargets(labels, batch, seq);
        LlamaPass.lossAndBackward(model, qa, plan, targets, 1f / LlamaPass.countTargets(targets), 99);
        List<float[]> out = new java.util.ArrayList<>();
        out.add(logits);
        out.addAll(qa.gradients().values());
        return out.toArray(new float[0][]);
    }

    private static void check(String what, float[] got, float[] want, double bound) {
        double err = MergeCheck.relativeError(got, want);
        assertTrue(err <= bound, what + ": relative error " + err + " > " + bound);
    }
}
