package org.qalora.worker.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class PassSeedTest {

    /** Pinned: a resumed run must draw the dropout masks an uninterrupted one drew. */
    @Test
    void passSeedIsStable() {
        assertEquals(0xAA5255FF67BF8BBFL, LocalTrainer.passSeed(42, 0, 0));
        assertEquals(0xF8E7AB1FAB4F71A3L, LocalTrainer.passSeed(7, 12, 3));
    }
}
