package org.qalora.driver.rounds;

/**
 * What an averaging task returns for its key range: the part file it wrote into the round's commit directory, its
 * size and SHA-256 (computed while writing), the step and total tokens it read from the (verified) update headers,
 * and the {@link UpdateAverager.KeyStats} the round's disagreement measures need. Or, when an update failed its
 * check, {@code refusal} (naming the slot, file and tensor) and {@code refusedSlot}, and no file.
 */
public record AveragedPart(int part, String file, long bytes, String sha256, long step, long totalTokens,
                           UpdateAverager.KeyStats stats, int refusedSlot, String refusal, String executorId,
                           long millis) implements java.io.Serializable {
    public boolean refused() { return refusal != null; }
}
