package org.qalora.quant.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.testing.Q41Check;
import org.qalora.quant.util.SplitMix64;

/**
 * Q4_1 holds a group-quantized matrix with real-valued zeros up to the half rounding of m = -S Z: checked weight by
 * weight in exact arithmetic against S (q - Z), and the check itself shown to catch a wrong m, swapped nibbles and
 * a lost row order.
 */
class Q41BlocksTest {

    /** A matrix like a merged QA-LoRA projection: half scales, integer codes, zeros moved off the integers. */
    static QuantizedMatrix merged(int out, int in, int bits, int group, long seed) {
        SplitMix64 rng = new SplitMix64(seed);
        int max = (1 << bits) - 1;
        int[] codes = new int[out * in];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = rng.nextInt(max + 1);
        }
        float[] scales = new float[in / group * out];
        float[] zeros = new float[scales.length];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = Float.float16ToFloat(Float.floatToFloat16((float) (0.002 + 0.05 * rng.nextDouble())));
            zeros[i] = (float) (rng.nextInt(max + 1) + (rng.nextDouble() - 0.5) * 0.8);
        }
        return QuantizedMatrix.fromCodes(out, in, bits, group, codes, scales, zeros);
    }

    private static byte[] encode(QuantizedMatrix q, int[] order) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        Q41Blocks.encode(q, order, b);
        return b.toByteArray();
    }

    static double worstRatio(QuantizedMatrix q, byte[] data, int[] order) {
        return Q41Check.compare(q, data, order).worstRatio();
    }

    @ParameterizedTest(name = "{0}-bit, groups of {1}")
    @CsvSource({"4, 32", "4, 128", "3, 64", "2, 32", "2, 256"})
    void storesTheMatrixUpToTheRoundingOfM(int bits, int group) throws IOException {
        QuantizedMatrix q = merged(48, 256, bits, group, 100 + bits * 1000L + group);
        byte[] data = encode(q, null);
        assertEquals(48 * 256 / 32 * 20, data.length);
        double ratio = worstRatio(q, data, null);
        assertTrue(ratio <= 1, "a weight is off by " + ratio + " times its fp16 bound");
        assertTrue(ratio > 0.5, "no weight comes near the bound (" + ratio + "): is m rounded at all?");
        // codes are stored verbatim and d is S itself (S is a half): the only rounding is m's
        int blocksPerRow = 256 / 32;
        for (int o = 0; o < 48; o++) {
            for (int b = 0; b < blocksPerRow; b++) {
                assertEquals(q.scale(b * 32 / group, o), Q41Blocks.d(data, o * blocksPerRow + b));
                for (int j = 0; j < 32; j++) {
                    assertEquals(q.code(o, b * 32 + j), Q41Blocks.code(data, o * blocksPerRow + b, j));
                }
            }
        }
    }

    @Test
    void blockLayoutIsGgmls() throws IOException {
        // one row of 32: codes 0..15 then 15..0, S = 1, Z = 0.5, so d = 1 (0x3C00) and m = -0.5 (0xB800);
        // qs[j] holds weight j in its low nibble and weight j + 16 in its high nibble
        int[] codes = new int[32];
        for (int j = 0; j < 16; j++) {
            codes[j] = j;
            codes[16 + j] = 15 - j;
        }
        byte[] data = encode(QuantizedMatrix.fromCodes(1, 32, 4, 32, codes, new float[] {1f}, new float[] {0.5f}), null);
        StringBuilder qs = new StringBuilder();
        for (int j = 0; j < 16; j++) {
            qs.append(String.format("%x%x", 15 - j, j));
        }
        assertEquals("003c00b8" + qs, java.util.HexFormat.of().formatHex(data));
    }

    @Test
    void theReportedRoundingIsTheMeasuredOne() throws IOException {
        QuantizedMatrix q = merged(16, 128, 4, 32, 7);
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        Rounding r = Q41Blocks.encode(q, null, b);
        assertEquals(worstRatio(q, b.toByteArray(), null), r.maxErrorRatio(), 1e-12);
        assertTrue(r.maxError() > 0 && r.maxError() <= r.maxMagnitude() * 0x1p-11);
    }

    @Test
    void boundCatchesAnOffsetOneBlockTooFar() throws IOException {
        QuantizedMatrix q = merged(8, 64, 4, 32, 8);
        byte[] data = encode(q, null);
        // move block 5's m two half steps away from the exact -S Z: that weight's error now exceeds its bound
        short m = Q41Blocks.getHalf(data, 5 * 20 + 2);
        Q41Blocks.putHalf(data, 5 * 20 + 2, (short) (m + 2));
        assertTrue(worstRatio(q, data, null) > 1, "a wrong offset passed the check");
    }

    @Test
    void boundCatchesSwappedNibbles() throws IOException {
        QuantizedMatrix q = merged(8, 64, 4, 32, 9);
        byte[] data = encode(q, null);
        for (int j = 0; j < 16; j++) {                       // high nibble first: a plausible layout mistake
            int v = data[4 + j] & 0xFF;
            data[4 + j] = (byte) ((v >>> 4) | (v << 4));
        }
        assertTrue(worstRatio(q, data, null) > 1);
    }

    @Test
    void rowOrderMovesWholeRowsWithTheirScalesAndOffsets() throws IOException {
        QuantizedMatrix q = merged(8, 64, 4, 32, 10);
        int[] order = {1, 0, 3, 2, 5, 4, 7, 6};
        byte[] data = encode(q, order);
        assertTrue(worstRatio(q, data, order) <= 1);
        assertTrue(worstRatio(q, data, null) > 1, "reading the permuted rows in the original order must fail");
        assertThrows(IllegalArgumentException.class, () -> encode(q, new int[] {0, 0, 1, 2, 3, 4, 5, 6}));
    }

    @Test
    void decodeIsGgmlsFloatFormula() throws IOException {
        QuantizedMatrix q = merged(4, 64, 4, 32, 11);
        byte[] data = encode(q, null);
        float[] w = Q41Blocks.decode(data, 8);
        for (int blk = 0; blk < 8; blk++) {
            float d = (float) Q41Blocks.d(data, blk), m = (float) Q41Blocks.m(data, blk);
            for (int j = 0; j < 32; j++) {
                assertEquals(Q41Blocks.code(data, blk, j) * d + m, w[blk * 32 + j]);
            }
        }
    }

    @Test
    void refusesWhatQ41CannotHold() {
        assertFalse(Q41Blocks.fits(merged(4, 64, 8, 32, 1)));
        assertFalse(Q41Blocks.fits(merged(4, 64, 4, 16, 1)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> encode(merged(4, 64, 8, 32, 1), null));
        assertTrue(e.getMessage().contains("does not fit Q4_1"), e.getMessage());
        float[] big = {1e5f};
        QuantizedMatrix huge = QuantizedMatrix.fromCodes(1, 32, 4, 32, new int[32], new float[] {1f}, big);
        e = assertThrows(IllegalArgumentException.class, () -> encode(huge, null));
        assertTrue(e.getMessage().contains("group 0") && e.getMessage().contains("largest half"), e.getMessage());
    }
}
