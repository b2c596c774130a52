package org.qalora.driver.rounds;

import java.io.Serializable;
import org.qalora.quant.util.SplitMix64;

/**
 * What one task of a round is asked to do: train {@code slot} of {@code round} (1-based: round r turns committed
 * state r-1 into r) for {@code steps} local steps, starting at global optimizer step {@code globalStep}, with
 * {@code seed} derived from (run seed, round, slot) only, never from the executor or attempt.
 */
public record SlotAssignment(int round, int slot, int slots, int steps, long globalStep, long seed)
        implements Serializable {

    /** SplitMix64-style derivation so neighbouring (round, slot) pairs get unrelated seeds. */
    public static long deriveSeed(long runSeed, int round, int slot) {
        return SplitMix64.mix64(runSeed ^ (SplitMix64.GOLDEN_GAMMA * (round + 1L)) ^ (0xC2B2AE3D27D4EB4FL * (slot + 1L)));
    }
}
