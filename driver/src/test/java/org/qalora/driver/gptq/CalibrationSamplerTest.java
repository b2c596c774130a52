package org.qalora.driver.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The calibration windows: capped by what the source holds, non-overlapping, seeded; too little text refused. */
class CalibrationSamplerTest {
    private static final int[] STREAM = IntStream.range(0, 1000).toArray(); // token i has id i: windows are visible

    @Test
    void windowsAreNonOverlappingSlicesInASeededOrder() {
        CalibrationSampler.Drawn a = CalibrationSampler.windows(STREAM, 5, 100, 42, "s", "s holds");
        assertEquals(5, a.samples());
        assertEquals(100, a.tokens());
        Set<Integer> starts = new HashSet<>();
        for (int[] w : a.ids()) {
            assertEquals(0, w[0] % 100, "aligned to the window grid");
            assertArrayEquals(IntStream.range(w[0], w[0] + 100).toArray(), w, "a contiguous slice");
            starts.add(w[0]);
        }
        assertEquals(5, starts.size(), "no window twice");
        CalibrationSampler.Drawn again = CalibrationSampler.windows(STREAM, 5, 100, 42, "s", "s holds");
        for (int s = 0; s < 5; s++) {
            assertArrayEquals(a.ids()[s], again.ids()[s], "same seed, same windows");
        }
        CalibrationSampler.Drawn other = CalibrationSampler.windows(STREAM, 5, 100, 43, "s", "s holds");
        boolean differs = false;
        for (int s = 0; s < 5; s++) {
            differs |= a.ids()[s][0] != other.ids()[s][0];
        }
        assertTrue(differs, "another seed draws other windows");
        assertTrue(CalibrationSampler.describe(a, 5, 100).isEmpty());
    }

    @Test
    void whatTheSourceHoldsCapsBothNumbers() {
        CalibrationSampler.Drawn few = CalibrationSampler.windows(STREAM, 128, 300, 1, "s", "s holds");
        assertEquals(3, few.samples(), "1000 tokens hold three windows of 300");
        assertEquals(List.of("only 3 of the 128 requested sequences fit"), CalibrationSampler.describe(few, 128, 300));
        CalibrationSampler.Drawn shorter = CalibrationSampler.windows(STREAM, 128, 2048, 1, "s", "s holds");
        assertEquals(1, shorter.samples());
        assertEquals(1000, shorter.tokens(), "one window of the whole stream");
        assertFalse(CalibrationSampler.describe(shorter, 128, 2048).isEmpty());
    }

    @Test
    void tooFewTokensAreRefusedWithTheSourceNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CalibrationSampler.windows(new int[63], 128, 2048, 1, "x", "--calibration notes.txt holds"));
        assertEquals("GPTQ calibration needs at least 64 tokens, but --calibration notes.txt holds only 63: give more"
                + " text (--calibration FILE), or use --quantize rtn", e.getMessage());
        assertEquals(1, CalibrationSampler.windows(new int[64], 128, 2048, 1, "x", "x holds").samples());
    }
}
