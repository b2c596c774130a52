package org.qalora.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PackedCodesTest {

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4, 8})
    void rowsAndColumnsRoundTrip(int bits) {
        Random random = new Random(bits);
        int rows = 64;
        int cols = 96;
        int[] codes = new int[rows * cols];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = random.nextInt(1 << bits);
        }
        assertArrayEquals(codes, PackedCodes.unpackRows(PackedCodes.packRows(codes, rows, cols, bits), rows, cols, bits));
        assertArrayEquals(codes, PackedCodes.unpackColumns(PackedCodes.packColumns(codes, rows, cols, bits), rows, cols, bits));
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4, 8})
    void powerOfTwoWidthsPackLeastSignificantFirst(int bits) {
        int[] codes = new int[32];
        codes[1] = 1;
        int[] words = PackedCodes.packColumns(codes, 1, 32, bits);
        assertEquals(1 << bits, words[0]);
    }

    @org.junit.jupiter.api.Test
    void threeBitsStraddleWordsTenOneTen() {
        int[] codes = new int[32];
        codes[10] = 0b111;
        codes[21] = 0b111;
        int[] words = PackedCodes.packColumns(codes, 1, 32, 3);
        assertEquals(0b11 << 30, words[0]);
        assertEquals(1 | (1 << 31), words[1]);
        assertEquals(0b11, words[2]);
    }

    @org.junit.jupiter.api.Test
    void rejectsOddWidthsAndOverflowingCodes() {
        assertThrows(IllegalArgumentException.class, () -> PackedCodes.checkBits(5));
        assertThrows(IllegalArgumentException.class, () -> PackedCodes.set(new int[1], 0, 1, 0, 4, 16));
        assertThrows(IllegalArgumentException.class, () -> PackedCodes.wordsFor(33, 4));
    }
}
