package org.qalora.worker.bench;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.qalora.quant.kernels.bench.OpenBlas;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;
import org.qalora.worker.model.TinyModels;
import org.qalora.worker.train.AdapterState;
import org.qalora.worker.train.LocalTrainer;
import org.qalora.worker.train.MicroBatch;
import org.qalora.worker.train.TrainingConfig;

/**
 * One QA-LoRA training step (forward + backward + AdamW) of a 12-layer, hidden-768 LLaMA (12 heads, intermediate
 * 2048, vocab 32000, int4 g32, r 16 on all 7 projections) on 8 x 256 tokens with 2 threads. Prints tokens/s and the
 * achieved matmul FLOP rate as a fraction of OpenBLAS sgemm measured in the same run on the projection shapes.
 *
 * <p>Run: see docs/PERFORMANCE.md, section "worker". Arguments: {@code [threads] [recompute] [steps]}.
 */
public final class TrainStepBench {
    private TrainStepBench() {}

    public static void main(String[] args) throws Throwable {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        boolean recompute = args.length > 1 && Boolean.parseBoolean(args[1]);
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int batch = 8, seq = 256, n = batch * seq;
        LlamaDims d = TinyModels.dims(32000, 768, 2048, 12, 12, 12);
        QaloraConfig cfg = QaloraConfig.allProjections(16, 32, 32, Pooling.MEAN, 0.05);

        try (CpuBackend be = new CpuBackend(threads)) {
            OpenBlas blas = OpenBlas.load().orElseThrow(() -> new IllegalStateException(
                    "the ratio needs OpenBLAS: apt-get install -y libopenblas0-pthread"));
            blas.setThreads(threads);
            System.out.printf("OpenBLAS core family: %s%n", blas.corename());
            // OpenBLAS is measured before and after the step and the best rate kept: load from other jobs on a
            // shared machine then counts against us, never for us.
            Rate blasRate = blasRate(blas, n);
            long t0 = System.nanoTime();
            LlamaModel model = TinyModels.random(be, d, 4, 32, 1);
            System.out.printf("model built in %.1f s (random weights, %s)%n", (System.nanoTime() - t0) / 1e9, be.name());
            SplittableRandom rng = new SplittableRandom(2);
            int[] ids = TinyModels.ids(rng, n, d.vocab());
            MicroBatch mb = new MicroBatch(batch, seq, ids, ids.clone());
            LocalTrainer trainer = new LocalTrainer(model, cfg,
                    TrainingConfig.defaults(Pooling.MEAN, 100).withRecompute(recompute));
            AdapterState state = AdapterState.initial(model, cfg, 3);
            state = trainer.run(state, List.of(List.of(mb)), 1).state(); // warm-up (JIT, allocation of the plan)
            List<Double> times = new ArrayList<>();
            double bestCpu = Double.MAX_VALUE;
            for (int s = 0; s < steps; s++) {
                long cpu0 = Rate.processCpuNanos(), a = System.nanoTime();
                state = trainer.run(state, List.of(List.of(mb)), 1).state();
                times.add((System.nanoTime() - a) / 1e9);
                bestCpu = Math.min(bestCpu, (Rate.processCpuNanos() - cpu0) / 1e9);
            }
            blasRate = blasRate.max(blasRate(blas, n));
            double best = times.stream().mapToDouble(Double::doubleValue).min().orElseThrow();

            double flops = stepFlops(d, cfg, batch, seq, recompute);
            double achieved = flops / best / 1e9, achievedCpu = flops / bestCpu / 1e9;
            System.out.printf("step times (s): %s, best %.3f s wall, %.3f s process CPU%n", times, best, bestCpu);
            System.out.printf("tokens/s: %.1f (%d tokens per step, recompute=%s, threads=%d)%n", n / best, n,
                    recompute, threads);
            System.out.printf("matmul work per step: %.1f GFLOP -> %.1f GFLOP/s wall, %.1f GFLOP per CPU-second%n",
                    flops / 1e9, achieved, achievedCpu);
            System.out.printf("OpenBLAS sgemm (%s) same run (best of the projection shapes): %.1f GFLOP/s wall, "
                    + "%.1f GFLOP per CPU-second%n", blas.corename(), blasRate.wall(), blasRate.cpu());
            System.out.printf("activation memory (planned up front): %.2f GB%n",
                    ActivationPlan.estimateFloats(d, cfg, batch, seq, true, recompute, 512) * 4 / 1e9);
            System.out.printf("ratio achieved / OpenBLAS = %.3f (wall clock), %.3f (CPU time)%n",
                    achieved / blasRate.wall(), achievedCpu / blasRate.cpu());
        }
    }

    /** Best OpenBLAS rate over the two projection shapes {@code [n x 768] x [768 x 768]^T} and {@code [n x 768] x [2048 x 768]^T}. */
    private static Rate blasRate(OpenBlas blas, int n) {
        return sgemmRate(blas, n, 768, 768, 3).max(sgemmRate(blas, n, 2048, 768, 3));
    }

    /**
     * Rate of {@code C[m, n] = A[m, k] B[n, k]^T} (row-major) in OpenBLAS after one warm-up call: per wall-clock
     * second (best of {@code reps} calls), and per second of this process's CPU time (which stays meaningful
     * when other jobs share the machine). The CPU rate is total work over total CPU time of calls repeated for
     * at least {@link #CPU_WINDOW_NANOS} of CPU time: the process CPU clock ticks in 10 ms steps here, so a
     * best-of over single calls (10-30 ms each) reads one tick for a call that took 15 ms and overstated
     * OpenBLAS by up to 1.5x (the figures before 2026-11-29 08:46).
     */
    private static Rate sgemmRate(OpenBlas blas, int m, int n, int k, int reps) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate((long) m * k * 4, 64); // [m, k]
            MemorySegment b = arena.allocate((long) n * k * 4, 64); // [n, k]
            MemorySegment c = arena.allocate((long) m * n * 4, 64); // [m, n]
            for (long i = 0; i < (long) m * k; i++) {
                a.setAtIndex(JAVA_FLOAT, i, (float) Math.sin(i));
            }
            for (long i = 0; i < (long) n * k; i++) {
                b.setAtIndex(JAVA_FLOAT, i, (float) Math.cos(i));
            }
            double work = 2.0 * m * n * k;
            blas.sgemmNT(m, n, k, a, b, c); // warm-up
            double bestWall = Double.MAX_VALUE;
            for (int r = 0; r < reps; r++) {
                long t0 = System.nanoTime();
                blas.sgemmNT(m, n, k, a, b, c);
                bestWall = Math.min(bestWall, System.nanoTime() - t0);
            }
            long calls = 0, cpu0 = Rate.processCpuNanos(), cpu;
            do {
                blas.sgemmNT(m, n, k, a, b, c);
                calls++;
                cpu = Rate.processCpuNanos() - cpu0;
            } while (cpu < CPU_WINDOW_NANOS);
            return new Rate(work / bestWall, work * calls / cpu);
        }
    }

    /** CPU time over which OpenBLAS's CPU rate is averaged: 50 ticks of the 10 ms process CPU clock. */
    private static final long CPU_WINDOW_NANOS = 500_000_000L;

    /** GFLOP per wall-clock second and per process-CPU second. */
    record Rate(double wall, double cpu) {
        static long processCpuNanos() {
            return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                    .getProcessCpuTime();
        }

        Rate max(Rate o) {
            return new Rate(Math.max(wall, o.wall), Math.max(cpu, o.cpu));
        }
    }

    /**
     * Matrix-product FLOPs of one step: projections and lm_head forward and input-gradient, attention's four
     * (forward) and five (backward) T x T products as computed (full square), adapter products, and with
     * recompute the forward of every layer but the last once more. Elementwise work is not counted.
     */
    static double stepFlops(LlamaDims d, QaloraConfig cfg, int batch, int seq, boolean recompute) {
        double n = (double) batch * seq, proj = 0, lora = 0;
        for (Projection p : Projection.values()) {
            proj += 2 * n * p.outFeatures(d) * p.inFeatures(d);
            int g = p.inFeatures(d) / cfg.groupSize();
            lora += 2 * n * cfg.rank() * (g + p.outFeatures(d));
        }
        double attnFwd = 2.0 * 2 * batch * d.heads() * (double) seq * seq * d.headDim();
        double attnBwd = 2.0 * 4 * batch * d.heads() * (double) seq * seq * d.headDim();
        double layerFwd = proj + lora + attnFwd;
        double layerBwd = proj + 2 * lora + attnBwd;
        double head = 2 * n * d.vocab() * d.hidden();
        // recompute rebuilds every layer but the last (whose activations are still in the shared buffers)
        return d.layers() * (layerFwd + layerBwd) + (recompute ? d.layers() - 1 : 0) * layerFwd + 2 * head;
    }
}
