package org.qalora.quant.util;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class SplitMix64Test {

    @Test
    void matchesTheReferenceSequence() {
        // Vigna's splitmix64.c with x = 0: the first three outputs.
        SplitMix64 g = new SplitMix64(0);
        assertEquals(0xE220A8397B1DCDAFL, g.nextLong());
        assertEquals(0x6E789E6AA1B965F4L, g.nextLong());
        assertEquals(0x06C45D188009454FL, g.nextLong());
    }

    @Test
    void nextLongIsTheMixOfTheAdvancedState() {
        SplitMix64 g = new SplitMix64(42);
        assertEquals(SplitMix64.mix64(42 + SplitMix64.GOLDEN_GAMMA), g.nextLong());
        assertEquals(SplitMix64.mix64(42 + 2 * SplitMix64.GOLDEN_GAMMA), g.nextLong());
    }
}
