package org.qalora.worker.backend;

import java.util.function.IntConsumer;
import org.qalora.quant.kernels.KernelPool;

/**
 * Runs {@code body(i)} for {@code i in [0, n)} split into at most {@code threads} contiguous chunks on the
 * backend's {@link KernelPool}. Each index is computed by exactly one thread and every reduction inside
 * {@code body} is sequential, so results never depend on thread timing (bit-identical runs). Kernels called from
 * inside a chunk run inline on that thread (the pool does not fan out twice).
 */
final class FixedPartition {
    private final KernelPool pool;

    FixedPartition(KernelPool pool) {
        this.pool = pool;
    }

    int threads() { return pool.threads(); }

    void forEach(int n, IntConsumer body) {
        int chunks = Math.min(pool.threads(), n);
        if (chunks <= 1) {
            for (int i = 0; i < n; i++) {
                body.accept(i);
            }
            return;
        }
        pool.run(chunks, c -> {
            int from = (int) ((long) n * c / chunks), to = (int) ((long) n * (c + 1) / chunks);
            for (int i = from; i < to; i++) {
                body.accept(i);
            }
        });
    }
}
