package org.qalora.worker.backend;

import java.util.Locale;
import org.qalora.worker.backend.cuda.CudaBackend;

/**
 * The one way to choose a backend. A device is {@code cpu}, {@code gpu} (ordinal 0) or {@code gpu:N}; a run asks
 * for {@code auto}, {@code cpu}, {@code gpu} or {@code gpu:N} and {@link #resolve} turns that and the Spark task's
 * GPU address into the device the task uses.
 */
public final class Backends {
    private Backends() {}

    /**
     * Opens the backend of a resolved device.
     *
     * @param device    {@code cpu}, {@code gpu} or {@code gpu:N}
     * @param precision null for the device's default ({@link #defaultPrecision})
     * @param threads   CPU threads (the CPU backend's pool; ignored on a GPU)
     * @throws IllegalArgumentException for a malformed device or bf16 on the CPU
     * @throws IllegalStateException    when a GPU is asked for but cannot be used, saying why (no libcuda, no PTX in
     *                                  the jar, compute capability below 8.0, no device with that ordinal)
     */
    public static Backend open(String device, Precision precision, int threads) {
        Precision p = precision == null ? defaultPrecision(device) : precision;
        int ordinal = gpuOrdinal(device);
        if (ordinal < 0) {
            if (p != Precision.FP32) {
                throw new IllegalArgumentException("precision " + p.label() + " needs a GPU; the CPU backend computes"
                        + " in fp32 only: use --precision fp32 (or auto) with --device cpu");
            }
            return new CpuBackend(threads);
        }
        String why = CudaBackend.unusableReason(ordinal);
        if (why != null) {
            throw new IllegalStateException("device " + device + " was asked for but cannot be used: " + why);
        }
        return new CudaBackend(ordinal, p);
    }

    /** bf16 on a GPU, fp32 on the CPU. */
    public static Precision defaultPrecision(String device) {
        return gpuOrdinal(device) >= 0 ? Precision.BF16 : Precision.FP32;
    }

    /**
     * The device a task uses.
     *
     * @param requested   {@code auto}, {@code cpu}, {@code gpu} or {@code gpu:N} (the run's setting)
     * @param taskAddress the Spark task's GPU address as {@code gpu:N}, or null when the task was given no GPU
     */
    public static String resolve(String requested, String taskAddress) {
        String r = requested == null ? "auto" : requested.trim().toLowerCase(Locale.ROOT);
        return switch (r) {
            case "auto" -> taskAddress != null ? taskAddress : "cpu";
            case "cpu" -> "cpu";
            case "gpu" -> taskAddress != null ? taskAddress : "gpu:0";
            default -> {
                gpuOrdinal(r); // validates gpu:N
                yield r;
            }
        };
    }

    /** Checks a requested device ({@code auto|cpu|gpu|gpu:N}); returns it normalised. */
    public static String checkRequested(String requested) {
        String r = requested == null ? "auto" : requested.trim().toLowerCase(Locale.ROOT);
        if (!r.equals("auto")) {
            gpuOrdinal(r);
        }
        return r;
    }

    /** -1 for {@code cpu}, N for {@code gpu:N}, 0 for {@code gpu}. */
    public static int gpuOrdinal(String device) {
        String d = device == null ? "" : device.trim().toLowerCase(Locale.ROOT);
        if (d.equals("cpu")) {
            return -1;
        }
        if (d.equals("gpu")) {
            return 0;
        }
        if (d.startsWith("gpu:")) {
            try {
                int n = Integer.parseInt(d.substring(4));
                if (n >= 0) {
                    return n;
                }
            } catch (NumberFormatException e) {
                // fall through to the error
            }
        }
        throw new IllegalArgumentException("device '" + device + "' is not one of auto, cpu, gpu, gpu:N (N = the"
                + " CUDA device ordinal, 0, 1, ...)");
    }
}
