package org.qalora.worker.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntConsumer;

/**
 * Runs {@code body(i)} for {@code i in [0, n)} split into at most {@code threads} contiguous chunks. Each index is
 * computed by exactly one thread and every reduction inside {@code body} is sequential, so results never depend on
 * thread timing (bit-identical runs).
 */
final class FixedPartition implements AutoCloseable {
    private final int threads;
    private final ExecutorService pool;

    FixedPartition(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "qalora-cpu");
            t.setDaemon(true);
            return t;
        });
    }

    int threads() { return threads; }

    void forEach(int n, IntConsumer body) {
        int chunks = Math.min(threads, n);
        if (chunks <= 1) {
            for (int i = 0; i < n; i++) {
                body.accept(i);
            }
            return;
        }
        List<Future<?>> futures = new ArrayList<>(chunks - 1);
        for (int c = 1; c < chunks; c++) {
            int from = (int) ((long) n * c / chunks);
            int to = (int) ((long) n * (c + 1) / chunks);
            futures.add(pool.submit(() -> {
                for (int i = from; i < to; i++) {
                    body.accept(i);
                }
            }));
        }
        int firstEnd = n / chunks;
        for (int i = 0; i < firstEnd; i++) {
            body.accept(i);
        }
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted", e);
            } catch (java.util.concurrent.ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) {
                    throw re;
                }
                throw new IllegalStateException(e.getCause());
            }
        }
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
