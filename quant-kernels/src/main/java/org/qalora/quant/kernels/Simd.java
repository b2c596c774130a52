package org.qalora.quant.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector species every fast kernel uses, fixed once per JVM.
 *
 * <p>It is a {@code static final} on purpose: C2 only turns Vector API calls into SIMD instructions when the
 * species is a compile-time constant; a species held in an instance field falls back to slow boxed code. To run
 * the 128/256/512-bit paths on one machine, start the JVM with {@code -Dqalora.vector.bits=128|256|512} (the test
 * build forks one JVM per width). Without the property the platform's preferred species is used.
 */
final class Simd {
    private Simd() {}

    /** The system property that forces the vector width in bits. */
    static final String BITS_PROPERTY = "qalora.vector.bits";

    static final VectorSpecies<Float> FLOAT = select();
    static final VectorSpecies<Integer> INT = FLOAT.withLanes(int.class);
    /** Doubles at the same width (the double-precision linear algebra, e.g. {@link BlockedCholesky}). */
    static final VectorSpecies<Double> DOUBLE = FLOAT.withLanes(double.class);
    /** Floats per vector. */
    static final int LANES = FLOAT.length();

    private static VectorSpecies<Float> select() {
        String forced = System.getProperty(BITS_PROPERTY);
        if (forced == null || forced.isBlank()) {
            return FloatVector.SPECIES_PREFERRED;
        }
        return switch (forced.trim()) {
            case "128" -> FloatVector.SPECIES_128;
            case "256" -> FloatVector.SPECIES_256;
            case "512" -> FloatVector.SPECIES_512;
            default -> throw new IllegalStateException("-D" + BITS_PROPERTY + "=" + forced
                    + " is not a supported vector width: use 128, 256 or 512 (or leave it unset for "
                    + VectorShape.preferredShape().vectorBitSize() + ", this machine's preferred width)");
        };
    }

    /** For reports and benchmarks: e.g. "512-bit (16 floats)". */
    static String describe() {
        return FLOAT.vectorBitSize() + "-bit (" + LANES + " floats)";
    }
}
