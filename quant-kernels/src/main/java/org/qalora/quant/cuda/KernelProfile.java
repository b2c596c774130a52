package org.qalora.quant.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Device time per kernel name, for finding where a step's time goes on a machine without Nsight. Off unless the
 * system property {@code qalora.cuda.profile} is true. When on, every launch outside a graph capture runs once (so
 * its effects happen as usual) and then {@code qalora.cuda.profile.repeats} more times (default 10) back to back
 * between two events; the mean of those repeats is charged to the kernel's name. Back-to-back repeats keep the GPU
 * fed, so the figure is a kernel's time as it would run inside a graph (launch gap included), not the host's launch
 * cost. Kernels that update their output in place (RoPE, accumulating products) compute garbage in this mode:
 * it is for timing, never for results.
 */
public final class KernelProfile {
    static final boolean ENABLED = Boolean.getBoolean("qalora.cuda.profile");
    private static final int REPEATS = Integer.getInteger("qalora.cuda.profile.repeats", 10);
    private static final Map<String, double[]> TOTALS = new ConcurrentHashMap<>();  // name -> {calls, ms}

    private KernelProfile() {}

    /** Whether launches are being timed ({@code -Dqalora.cuda.profile=true}). */
    public static boolean enabled() {
        return ENABLED;
    }

    /** Runs {@code launch}; when profiling, times {@link #REPEATS} further runs of it and charges them to {@code name}. */
    static void run(CudaDriver cuda, String name, Runnable launch) {
        launch.run();
        if (!ENABLED || !cuda.launchStream().equals(java.lang.foreign.MemorySegment.NULL)) {
            return;  // a capture records launches; timing them there would record the events too
        }
        double ms = cuda.timeMillis(() -> {
            for (int r = 0; r < REPEATS; r++) {
                launch.run();
            }
        }) / REPEATS;
        TOTALS.compute(name, (k, t) -> {
            double[] s = t == null ? new double[2] : t;
            s[0]++;
            s[1] += ms;
            return s;
        });
    }

    /** Forgets what was timed so far. */
    public static void reset() {
        TOTALS.clear();
    }

    /**
     * One line per kernel name, largest total first: calls, total ms, mean us, share of all timed time, each
     * divided by {@code per} (for example the number of decoded tokens, to read "per token").
     */
    public static String report(int per) {
        List<Map.Entry<String, double[]>> rows = new ArrayList<>(TOTALS.entrySet());
        rows.sort((a, b) -> Double.compare(b.getValue()[1], a.getValue()[1]));
        double all = rows.stream().mapToDouble(e -> e.getValue()[1]).sum();
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT,
                "%-44s %10s %10s %9s %6s%n", "kernel", "calls/" + per, "ms/" + per, "mean us", "share"));
        for (Map.Entry<String, double[]> e : rows) {
            double[] s = e.getValue();
            sb.append(String.format(Locale.ROOT, "%-44s %10.1f %10.4f %9.2f %5.1f%%%n", e.getKey(), s[0] / per,
                    s[1] / per, 1000 * s[1] / s[0], 100 * s[1] / all));
        }
        sb.append(String.format(Locale.ROOT, "%-44s %10s %10.4f%n", "all timed", "", all / per));
        return sb.toString();
    }
}
