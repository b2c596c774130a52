package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/** The forced width is the one the kernels use (each forked test run checks its own). */
class SimdTest {
    @Test
    void speciesFollowsTheSystemProperty() {
        String forced = System.getProperty(Simd.BITS_PROPERTY);
        int expected = forced == null ? FloatVector.SPECIES_PREFERRED.vectorBitSize() : Integer.parseInt(forced);
        assertEquals(expected, Simd.FLOAT.vectorBitSize());
        assertEquals(Simd.FLOAT.length(), Simd.INT.length());
        assertEquals(0, BlockedQuantWeight.QB % Gemm.NB, "a weight block holds whole micro-tiles");
    }
}
