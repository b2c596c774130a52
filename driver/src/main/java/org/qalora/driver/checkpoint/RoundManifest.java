package org.qalora.driver.checkpoint;

import java.util.Map;
import org.qalora.driver.rounds.RoundMetrics;

/**
 * {@code _MANIFEST.json} of a committed round directory, written last: a round directory without it (or whose
 * files do not match its checksums) is not committed and is ignored. {@code metrics} is null for round 0 (the
 * initial state).
 */
public record RoundManifest(String format, int round, long globalStep, String planHash, String configHash,
                            Map<String, FileEntry> files, RoundMetrics metrics) {
    public static final String FORMAT = "qalora-round-v1";

    /** A file of the round directory: its size and SHA-256. */
    public record FileEntry(long bytes, String sha256) {}
}
