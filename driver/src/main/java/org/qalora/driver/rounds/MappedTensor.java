package org.qalora.driver.rounds;

import java.lang.foreign.MemorySegment;

/**
 * One slot's tensor as it lies in its update file: little-endian float32 bytes, a view of the file's mapping (no
 * copy), and the check those bytes must pass. {@link BlockedPartAverage} walks every slot's tensor of a key side by
 * side, a block at a time, and hands each block to the check as it reads it, so the check sees every byte once, in
 * order, from cache rather than in a pass of its own.
 */
public record MappedTensor(MemorySegment bytes, Check check) {
    /** Checks a tensor's bytes fed block by block in order; one instance per read of a tensor. */
    public interface Check {
        void update(MemorySegment block);

        /** After the last block: throws, naming the file and the tensor, if the bytes fed do not pass. */
        void finish();
    }

    /** For bytes with nothing to check against (the driver's own reads of update files it trusts). */
    public static final Check UNCHECKED = new Check() {
        @Override
        public void update(MemorySegment block) {}

        @Override
        public void finish() {}
    };
}
