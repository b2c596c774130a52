package org.qalora.driver.rounds;

import java.io.Serializable;

/**
 * What one task of a round is asked to do: train {@code slot} of {@code round} (1-based: round r turns committed
 * state r-1 into r) for {@code steps} local steps, starting at global optimizer step {@code globalStep}, with
 * {@code seed} derived from (run seed, round, slot) only, never from the executor or attempt.
 */
public record SlotAssignment(int round, int slot, int slots, int steps, long globalStep, long seed)
        implements Serializable {

    /** SplitMix64-style derivation so neighbouring (round, slot) pairs get unrelated seeds. */
    public static long deriveSeed(long runSeed, int round, int slot) {
        long z = runSeed ^ (0x9E3779B97F4A7C15L * (round + 1L)) ^ (0xC2B2AE3D27D4EB4FL * (slot + 1L));
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
