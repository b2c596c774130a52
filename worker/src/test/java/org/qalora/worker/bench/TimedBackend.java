package org.qalora.worker.bench;

import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.worker.backend.Backend;

/**
 * A profiling view of a GPU backend for the benchmark: every Backend call records a CUDA event before it runs, so
 * the device time between consecutive events is charged to the call that was issued (device idle time included,
 * which shows where the host cannot keep up). Events are read once at the end: nothing is synchronised per call.
 */
final class TimedBackend {
    private final CudaDriver cuda;
    private final List<MemorySegment> events = new ArrayList<>();
    private final List<String> labels = new ArrayList<>();

    private TimedBackend(CudaDriver cuda) {
        this.cuda = cuda;
    }

    /** A Backend that forwards to {@code inner} and records; {@link #report} prints the totals. */
    static Backend wrap(Backend inner, CudaDriver cuda, TimedBackend[] out) {
        TimedBackend t = new TimedBackend(cuda);
        out[0] = t;
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    t.mark(method.getName() + (args == null ? "" : shape(args)));
                    try {
                        return method.invoke(inner, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    private static String shape(Object[] args) {
        for (Object a : args) {
            if (a instanceof org.qalora.worker.backend.LinearWeight w) {
                return "[" + w.outFeatures() + "x" + w.inFeatures() + "]";
            }
        }
        return "";
    }

    synchronized void mark(String label) {
        events.add(cuda.recordEvent());
        labels.add(label);
    }

    /** Prints device milliseconds per call kind, largest first, and forgets the events. */
    synchronized void report(String title) {
        mark("end");
        Map<String, double[]> totals = new TreeMap<>();
        double all = 0;
        for (int i = 0; i + 1 < events.size(); i++) {
            double ms = cuda.elapsedAndDestroy(events.get(i), events.get(i + 1));
            double[] t = totals.computeIfAbsent(labels.get(i), k -> new double[2]);
            t[0] += ms;
            t[1]++;
            all += ms;
        }
        events.clear();
        labels.clear();
        System.out.printf("%s: %.1f ms of device time by backend call%n", title, all);
        double total = all;
        totals.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0])).limit(25)
                .forEach(e -> System.out.printf("  %-36s %8.2f ms %5.1f%% %6d calls%n", e.getKey(), e.getValue()[0],
                        100 * e.getValue()[0] / total, (long) e.getValue()[1]));
    }
}
