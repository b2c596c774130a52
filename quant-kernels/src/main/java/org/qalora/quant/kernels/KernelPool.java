package org.qalora.quant.kernels;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntConsumer;

/**
 * A fixed-size pool that runs the tasks of one kernel call. A kernel splits its output into a fixed list of
 * tasks (column or row blocks) whose arithmetic does not depend on which thread runs them, so results are
 * bit-identical across runs and thread counts; threads only decide who runs which task, never how.
 *
 * <p>The calling thread works too, so a pool of {@code n} threads keeps {@code n - 1} helpers. A kernel called
 * from inside a pool task runs inline on that thread (no nested fan-out, no deadlock). One pool is meant to be
 * shared by all kernels of a process ({@link #shared()}); its size comes from {@code -Dqalora.kernel.threads}
 * and defaults to the number of available processors.
 */
public final class KernelPool implements AutoCloseable {
    /** The system property that sizes {@link #shared()}. */
    public static final String THREADS_PROPERTY = "qalora.kernel.threads";

    private static volatile KernelPool shared;
    private static final ThreadLocal<Boolean> IN_POOL_TASK = ThreadLocal.withInitial(() -> false);

    private final int threads;
    private final ExecutorService helpers;

    /** A pool of {@code threads} threads in total (the caller counts as one). */
    public KernelPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("a kernel pool needs at least 1 thread, got " + threads);
        }
        this.threads = threads;
        AtomicInteger ids = new AtomicInteger();
        this.helpers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "qalora-kernel-" + ids.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** The process-wide pool, created on first use. */
    public static KernelPool shared() {
        KernelPool pool = shared;
        if (pool == null) {
            synchronized (KernelPool.class) {
                pool = shared;
                if (pool == null) {
                    int n = Integer.getInteger(THREADS_PROPERTY, Runtime.getRuntime().availableProcessors());
                    pool = new KernelPool(Math.max(1, n));
                    shared = pool;
                }
            }
        }
        return pool;
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs {@code task.accept(t)} for every {@code t} in {@code [0, tasks)} and returns when all are done. The
     * first exception thrown by a task is rethrown here (the remaining tasks are skipped).
     */
    public void run(int tasks, IntConsumer task) {
        if (tasks <= 0) {
            return;
        }
        if (tasks == 1 || helpers == null || IN_POOL_TASK.get()) {
            for (int t = 0; t < tasks; t++) {
                task.accept(t);
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(tasks);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Runnable worker = () -> {
            boolean outer = IN_POOL_TASK.get();
            IN_POOL_TASK.set(true);
            try {
                for (int t; (t = next.getAndIncrement()) < tasks; done.countDown()) {
                    if (failure.get() == null) {
                        try {
                            task.accept(t);
                        } catch (Throwable e) {
                            failure.compareAndSet(null, e);
                        }
                    }
                }
            } finally {
                IN_POOL_TASK.set(outer);
            }
        };
        int helpersWanted = Math.min(threads, tasks) - 1;
        for (int h = 0; h < helpersWanted; h++) {
            helpers.execute(worker);
        }
        worker.run();
        // Waits only for tasks already claimed by helpers; a helper that starts late finds nothing left to do.
        try {
            done.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for kernel tasks", e);
        }
        Throwable e = failure.get();
        if (e instanceof RuntimeException re) {
            throw re;
        } else if (e instanceof Error err) {
            throw err;
        } else if (e != null) {
            throw new IllegalStateException(e);
        }
    }

    /** Stops the helper threads of a pool made with {@link #KernelPool(int)}; the shared pool cannot be closed. */
    @Override
    public void close() {
        if (this == shared) {
            throw new IllegalStateException("the shared kernel pool lives as long as the process; do not close it");
        }
        if (helpers != null) {
            helpers.shutdown();
        }
    }
}
