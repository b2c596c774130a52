package org.qalora.worker.quantize;

/**
 * How the calibration sequences are cut into chunks: contiguous ranges of at least {@link #MIN_SEQUENCES} sequences
 * (but one chunk for fewer), at most {@link #MAX_CHUNKS} of them, sizes differing by at most one (the first {@code n % chunks} get the extra sequence). A chunk is the unit of the
 * canonical Hessian sum ({@code HessianSum}: sequences in order within a chunk, chunk partials in chunk order) and,
 * in {@code train}, of the distributed calibration's tasks. It depends on the number of sequences only, so
 * single-process and distributed GPTQ give the same bits whatever the cluster.
 */
public final class CalibrationChunks {
    /** 128 sequences (the paper's calibration) make 16 chunks of 8: 16 tasks per calibration stage. */
    public static final int MAX_CHUNKS = 16;
    /** A task per sequence would cost more in task overhead than it computes on small models. */
    public static final int MIN_SEQUENCES = 4;

    private CalibrationChunks() {}

    public static int count(int sequences) {
        if (sequences <= 0) {
            throw new IllegalArgumentException("calibration needs at least one sequence, got " + sequences);
        }
        return Math.min((sequences + MIN_SEQUENCES - 1) / MIN_SEQUENCES, MAX_CHUNKS);
    }

    /** First sequence of chunk {@code c}; chunk {@code c} is {@code [start(c), start(c + 1))}. */
    public static int start(int sequences, int c) {
        int chunks = count(sequences);
        int base = sequences / chunks;
        int extra = sequences % chunks;
        return c * base + Math.min(c, extra);
    }
}
