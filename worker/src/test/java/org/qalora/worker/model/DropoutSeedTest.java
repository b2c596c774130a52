package org.qalora.worker.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class DropoutSeedTest {

    /** Pinned: recompute and resumed runs must draw the masks earlier code drew. */
    @Test
    void dropoutSeedIsStable() {
        assertEquals(0xB4DC9BD462DE412BL, DecoderLayerPass.dropoutSeed(123, 0, Projection.Q));
        assertEquals(0xAF514F9E14B7B5EDL, DecoderLayerPass.dropoutSeed(-99, 3, Projection.DOWN));
    }
}
