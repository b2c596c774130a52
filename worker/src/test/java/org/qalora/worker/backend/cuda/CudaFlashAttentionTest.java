package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.qalora.worker.backend.AttentionShape;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.model.TinyModels;

/**
 * The fused bf16 attention kernels ({@code attention_kernels.cu}) against the CPU backend's fp32 attention, for every
 * head dimension they are built for, with GQA, sequence lengths that leave a partial last tile of 64, and one or
 * several tiles; run twice for bit-identity; and at a long sequence, to show that no {@code T x T} buffer is
 * allocated. Skipped without a GPU.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CudaFlashAttentionTest {
    /** The unfused bf16 path's bound (CudaVsCpuTest): bf16 inputs, P and dS rounded to bf16, fp32 sums. */
    private static final double BOUND = 3e-2;
    private static final String[] NAMES = {"out", "dq", "dk", "dv"};

    private CpuBackend cpu;
    private CudaBackend bf16;
    private final SplittableRandom rng = new SplittableRandom(5);

    @BeforeAll
    void open() {
        bf16 = CudaTestSupport.backendOrSkip(Precision.BF16);
        cpu = new CpuBackend(2);
    }

    @AfterAll
    void close() {
        for (Backend b : new Backend[] {cpu, bf16}) {
            if (b != null) {
                b.close();
            }
        }
    }

    @Test
    void matchesTheCpuForEveryHeadDimensionAndIsBitIdenticalOnARerun() {
        AttentionShape[] shapes = {
            new AttentionShape(2, 37, 8, 2, 16),    // one partial tile, 4 query heads per kv head
            new AttentionShape(3, 64, 4, 4, 32),    // exactly one tile, no grouping
            new AttentionShape(2, 130, 6, 3, 64),   // 3 tiles, the last of 2 rows
            new AttentionShape(1, 200, 8, 2, 128),  // LLaMA's head dim, 4 tiles
            new AttentionShape(1, 1, 2, 1, 64),     // a single token
        };
        for (AttentionShape s : shapes) {
            assertTrue(FlashAttention.supports(s.headDim()), "head dim " + s.headDim());
            int n = s.tokens();
            float[] q = randn(n * s.queryWidth()), k = randn(n * s.kvWidth()), v = randn(n * s.kvWidth());
            float[] dOut = randn(n * s.queryWidth());
            float[][] want = CudaVsCpuTest.attention(cpu, s, q, k, v, dOut);
            float[][] got = CudaVsCpuTest.attention(bf16, s, q, k, v, dOut);
            float[][] again = CudaVsCpuTest.attention(bf16, s, q, k, v, dOut);
            for (int i = 0; i < 4; i++) {
                // One token: dq and dk are exactly 0 on the CPU (a softmax over one key is constant), so measure
                // them against dv's scale instead of their own.
                double err = s.seqLen() == 1 && (i == 1 || i == 2) ? maxAbs(got[i]) / maxAbs(want[3])
                        : MergeCheck.relativeError(got[i], want[i]);
                System.out.printf("flash attention %s %s: relative error %.2e%n", s, NAMES[i], err);
                assertTrue(err <= BOUND, s + " " + NAMES[i] + ": relative error " + err + " > " + BOUND);
                assertArrayEquals(got[i], again[i], 0f, s + " " + NAMES[i] + " differs between two runs");
            }
        }
    }

    @Test
    void aLongSequenceAllocatesNothingOfSizeTxT() {
        AttentionShape s = new AttentionShape(1, 4096, 4, 2, 128);
        int n = s.tokens();
        Tensor q = bf16.allocateActivation(n, s.queryWidth()), k = bf16.allocateActivation(n, s.kvWidth()),
                v = bf16.allocateActivation(n, s.kvWidth()), d = bf16.allocateActivation(n, s.queryWidth());
        bf16.write(q, randn(n * s.queryWidth()));
        bf16.write(k, randn(n * s.kvWidth()));
        bf16.write(v, randn(n * s.kvWidth()));
        bf16.write(d, randn(n * s.queryWidth()));
        Tensor state = bf16.attentionState(s), out = bf16.allocateActivation(n, s.queryWidth());
        Tensor dq = bf16.allocateActivation(n, s.queryWidth()), dk = bf16.allocateActivation(n, s.kvWidth()),
                dv = bf16.allocateActivation(n, s.kvWidth());
        bf16.synchronize();
        long before = bf16.driver().allocatedBytes();
        bf16.driver().resetPeak();
        bf16.attention(q, k, v, s, state, out);
        bf16.attentionBackward(d, q, k, v, state, s, dq, dk, dv);
        bf16.synchronize();
        long grown = bf16.driver().peakAllocatedBytes() - before, oneScoreMatrix = 4L * s.seqLen() * s.seqLen();
        assertTrue(grown < oneScoreMatrix / 16, "attention at T " + s.seqLen() + " allocated " + grown
                + " bytes; one fp32 T x T score matrix is " + oneScoreMatrix);
        for (float x : bf16.download(dq)) {
            assertTrue(Float.isFinite(x), "dq has a non-finite value");
        }
    }

    private static double maxAbs(float[] x) {
        double m = 0;
        for (float f : x) {
            m = Math.max(m, Math.abs(f));
        }
        return m;
    }

    private float[] randn(int n) { return TinyModels.gaussian(rng, n, 1.0); }
}
