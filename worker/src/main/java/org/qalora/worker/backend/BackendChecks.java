package org.qalora.worker.backend;

/** Input checks every backend makes the same way, with the same messages, before any work. */
public final class BackendChecks {
    private BackendChecks() {}

    /** Every token id lies in {@code [0, vocab)}. */
    public static void tokenIds(int[] ids, int vocab) {
        for (int n = 0; n < ids.length; n++) {
            if (ids[n] < 0 || ids[n] >= vocab) {
                throw new IllegalArgumentException("token id " + ids[n] + " at position " + n
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
    }

    /** Every target is -100 (ignored) or lies in {@code [0, vocab)}. */
    public static void targets(int[] targets, int vocab) {
        for (int n = 0; n < targets.length; n++) {
            int t = targets[n];
            if (t != -100 && (t < 0 || t >= vocab)) {
                throw new IllegalArgumentException("label " + t + " at position " + n
                        + " is outside the vocabulary [0, " + vocab + ") and is not -100");
            }
        }
    }

    /** Every (sequence, position) pair names a row of the cache. */
    public static void cacheRows(KvCacheShape shape, int[] sequences, int[] positions) {
        if (sequences.length != positions.length) {
            throw new IllegalArgumentException("cached attention: " + sequences.length + " sequence indices but "
                    + positions.length + " positions");
        }
        for (int n = 0; n < positions.length; n++) {
            if (sequences[n] < 0 || sequences[n] >= shape.sequences()) {
                throw new IllegalArgumentException("cached attention row " + n + ": sequence " + sequences[n]
                        + " is outside the cache's [0, " + shape.sequences() + ")");
            }
            if (positions[n] < 0 || positions[n] >= shape.capacity()) {
                throw new IllegalArgumentException("cached attention row " + n + ": position " + positions[n]
                        + " is outside the cache's capacity [0, " + shape.capacity() + ")");
            }
        }
    }
}
