package org.qalora.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class GroupSizesTest {
    @Test
    void suggestsOnlySizesThatDivideEveryDimension() {
        assertEquals(List.of(64, 32, 16), GroupSizes.fitting(64, 128), "the demo model: never 128");
        assertEquals(List.of(128, 64, 32), GroupSizes.fitting(4096, 11008), "LLaMA-7B");
        assertEquals(List.of(8), GroupSizes.fitting(72, 200));
        assertEquals(List.of(), GroupSizes.fitting(60));
        assertEquals("pick a group size that divides 64 and 128: 64, 32 or 16", GroupSizes.hint(64, 128));
        assertEquals("pick a group size that divides 60", GroupSizes.hint(60));
        assertEquals("pick a group size that divides 72, 96 and 200: 8", GroupSizes.hint(72, 96, 200));
    }
}
