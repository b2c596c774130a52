package org.qalora.worker.backend.cuda;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.worker.backend.AttentionShape;

/**
 * Launchers for {@code attention_kernels.cu}: causal GQA attention in bf16 as fused flash-attention kernels (scores
 * and probabilities live in registers; nothing of size {@code T x T} is written). The bf16 training path of
 * {@link CudaAttention} uses it for the head dimensions it has kernels for ({@link #supports}).
 *
 * <p>Its backward needs the forward's output (for {@code D = rowsum(dO * O)}), so the attention state holds, after
 * the fp32 {@code lse [B, H, T]}, a bf16 copy of {@code O} that the forward writes next to {@code out}.
 */
final class FlashAttention {
    private static final int ROWS = 64, THREADS = 128;
    private static final int[] HEAD_DIMS = {16, 32, 64, 128};

    private final CudaDriver cuda;
    private final Map<Integer, MemorySegment[]> kernels = new HashMap<>();  // head dim -> forward, dq, dkdv
    private final MemorySegment dot;

    FlashAttention(CudaDriver cuda) {
        this.cuda = cuda;
        MemorySegment m = QuantKernelModule.loadModule(cuda, "attention_kernels");
        for (int d : HEAD_DIMS) {
            MemorySegment[] f = {cuda.function(m, "flash_attention_forward_d" + d),
                    cuda.function(m, "flash_attention_dq_d" + d), cuda.function(m, "flash_attention_dkdv_d" + d)};
            cuda.allowDynamicSharedMemory(f[0], "flash_attention_forward_d" + d, forwardShared(d));
            cuda.allowDynamicSharedMemory(f[1], "flash_attention_dq_d" + d, dqShared(d));
            cuda.allowDynamicSharedMemory(f[2], "flash_attention_dkdv_d" + d, dkdvShared(d));
            kernels.put(d, f);
        }
        dot = cuda.function(m, "flash_attention_dot");
    }

    static boolean supports(int headDim) {
        for (int d : HEAD_DIMS) {
            if (d == headDim) {
                return true;
            }
        }
        return false;
    }

    /** Shared memory of {@code n} tiles of 64 rows of {@code d + 8} bf16 (the padding spreads ldmatrix's banks). */
    private static int tiles(int d, int n) {
        return n * ROWS * (d + 8) * 2;
    }

    // Streamed tiles are double-buffered: K, V x 2 (forward); Q, dO + K, V x 2 (dq); K, V + Q, dO, lse, D x 2 (dkdv).
    private static int forwardShared(int d) { return tiles(d, 4); }

    private static int dqShared(int d) { return tiles(d, 6); }

    private static int dkdvShared(int d) { return tiles(d, 6) + 4 * ROWS * Float.BYTES; }

    /** Floats of the attention state: the lse, then the saved bf16 output (two per float). */
    static long stateFloats(AttentionShape s) {
        return lseFloats(s) + ((long) s.tokens() * s.queryWidth() + 1) / 2;
    }

    /** The lse's floats, rounded up to a multiple of 4 so that the saved output starts 16-byte aligned. */
    private static long lseFloats(AttentionShape s) {
        return ((long) s.batch() * s.heads() * s.seqLen() + 3) & ~3L;
    }

    private static int queryTiles(AttentionShape s) {
        return (s.seqLen() + ROWS - 1) / ROWS;
    }

    /** {@code out = softmax(scale q k^T, causal) v}; q, k, v bf16; fills the state (lse and the saved output). */
    void forward(long q, long k, long v, CudaTensor out, AttentionShape s, CudaTensor state) {
        int d = s.headDim();
        cuda.launch(kernels.get(d)[0], "flash_attention_forward_d" + d, queryTiles(s), s.heads(), s.batch(), THREADS,
                1, 1, forwardShared(d), q, k, v, out.pointer(), out.flag(), saved(state, s), state.pointer(), s.seqLen(),
                s.heads(), s.kvHeads(), scale(s));
    }

    /** Writes dq, dk, dv; q, k, v and dOut bf16; {@code dot} is a scratch of {@code B*H*T} floats. */
    void backward(long dOut, long q, long k, long v, CudaTensor state, AttentionShape s, long dot,
                  CudaTensor dq, CudaTensor dk, CudaTensor dv) {
        int d = s.headDim();
        long rows = (long) s.tokens() * s.heads();
        cuda.launch(this.dot, "flash_attention_dot", (int) Math.min(cuda.multiprocessors() * 16L, (rows + 255) / 256),
                1, 1, 256, 1, 1, 0, dOut, saved(state, s), dot, s.seqLen(), s.heads(), d, rows);
        cuda.launch(kernels.get(d)[1], "flash_attention_dq_d" + d, queryTiles(s), s.heads(), s.batch(), THREADS, 1, 1,
                dqShared(d), q, k, v, dOut, state.pointer(), dot, dq.pointer(), dq.flag(), s.seqLen(), s.heads(),
                s.kvHeads(), scale(s));
        cuda.launch(kernels.get(d)[2], "flash_attention_dkdv_d" + d, queryTiles(s), s.kvHeads(), s.batch(), THREADS,
                1, 1, dkdvShared(d), q, k, v, dOut, state.pointer(), dot, dk.pointer(),
                dk.flag(), dv.pointer(), dv.flag(), s.seqLen(), s.heads(), s.kvHeads(), scale(s));
    }

    private static long saved(CudaTensor state, AttentionShape s) {
        return state.pointer() + 4L * lseFloats(s);  // 16-byte aligned: flash_attention_dot reads 8 bf16 at a time
    }

    private static float scale(AttentionShape s) {
        return (float) (1.0 / Math.sqrt(s.headDim()));
    }
}
