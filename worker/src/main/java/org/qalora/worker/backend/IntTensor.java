package org.qalora.worker.backend;

/**
 * Integers held where the backend computes (the CPU heap, device memory): the token ids and cache rows of a decode
 * step. A step whose launches are replayed ({@link Backend#repeatable}) reads them there, so the same recorded step
 * serves every position: only the integers are rewritten between replays ({@link Backend#writeInts}).
 */
public interface IntTensor {
    int size();

    /** The {@code length} integers from {@code from}, sharing this storage. */
    IntTensor slice(int from, int length);
}
