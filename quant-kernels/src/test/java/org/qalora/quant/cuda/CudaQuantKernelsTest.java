package org.qalora.quant.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qalora.quant.kernels.ReferenceQuantKernels;

/**
 * The CUDA kernels against {@link ReferenceQuantKernels} ({@link CudaParity}: bits 2/3/4/8, group sizes
 * 32/64/128/48, odd token and output counts, fast and naive GPU kernels). Skipped, with the reason, where
 * {@link CudaQuantKernels#available()} is false (CI has nvcc but no GPU); on the GPU machine
 * {@link CudaSelfCheck} runs the same checks without Maven.
 */
class CudaQuantKernelsTest {
    private static CudaQuantKernels gpu;        // default policy: GEMV, then dequantize + cublasSgemm
    private static CudaQuantKernels fusedOnly;  // the fused kernels for every multi-token product

    @BeforeAll
    static void open() {
        if (CudaQuantKernels.available()) {
            gpu = new CudaQuantKernels();
            fusedOnly = new CudaQuantKernels(Integer.MAX_VALUE);
        }
    }

    private static void requireGpu() {
        assumeTrue(gpu != null, () -> "CUDA unavailable, skipped: " + CudaQuantKernels.unavailableReason());
    }

    static Stream<CudaParity.Case> cases() {
        return CudaParity.cases().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void matchesReference(CudaParity.Case c) {
        requireGpu();
        List<String> failures = CudaParity.check(gpu, c);
        assertTrue(failures.isEmpty(), () -> String.join("\n", failures));
    }

    /** The host-array methods routed to the fused kernels (the path used where cuBLAS is missing). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("fusedCases")
    void fusedPolicyMatchesReference(CudaParity.Case c) {
        requireGpu();
        List<String> failures = CudaParity.check(fusedOnly, c);
        assertTrue(failures.isEmpty(), () -> String.join("\n", failures));
    }

    static Stream<CudaParity.Case> fusedCases() {
        return CudaParity.cases().stream().filter(c -> c.tokens() > 1 && (c.bits() == 3 || c.bits() == 4));
    }

    @Test
    void mergedZerosShareCodesAndStayExact() {
        requireGpu();
        List<String> failures = CudaParity.checkWithZeros(gpu);
        assertTrue(failures.isEmpty(), () -> String.join("\n", failures));
    }

    @Test
    void rejectsWeightsOfOtherImplementations() {
        requireGpu();
        var foreign = new ReferenceQuantKernels().prepare(CudaParity.randomMatrix(new Random(1), 3, 32, 4, 32));
        var e = assertThrows(IllegalArgumentException.class, () -> gpu.gemv(foreign, new float[32], 0, new float[3], 0));
        assertTrue(e.getMessage().contains("CudaQuantKernels"), e.getMessage());
    }

    @Test
    void rejectsShortArraysNamingTheArgument() {
        requireGpu();
        try (CudaPreparedWeight w = gpu.prepare(CudaParity.randomMatrix(new Random(2), 5, 64, 4, 32))) {
            var e = assertThrows(IllegalArgumentException.class, () -> gpu.matmul(w, new float[64], 0, 2, new float[10], 0));
            assertTrue(e.getMessage().startsWith("x:"), e.getMessage());
        }
    }

    /** One token is always the GEMV, so the cuBLAS threshold must leave it alone; checked before any CUDA call. */
    @Test
    void rejectsCublasThresholdBelowTwo() {
        var e = assertThrows(IllegalArgumentException.class, () -> new CudaQuantKernels(1));
        assertTrue(e.getMessage().contains("cublasMinTokens"), e.getMessage());
    }

    /** Runs everywhere: on a machine without a GPU, availability is false with a reason and nothing crashes. */
    @Test
    void availabilityIsExplained() {
        boolean available = CudaDriver.available();
        if (!available) {
            assertNotNull(CudaDriver.unavailableReason());
            assertFalse(CudaQuantKernels.available());
            assertNotNull(CudaQuantKernels.unavailableReason());
            CudaException e = assertThrows(CudaException.class, CudaQuantKernels::new);
            assertEquals(CudaDriver.unavailableReason(), e.getMessage());
        } else {
            assertTrue(CudaDriver.get().computeMajor() > 0);
        }
    }

    /**
     * The build put both PTX images into the jar. Where nvcc is installed they must be there (CI compiles them
     * without a GPU); a build without nvcc skips them, and then this test is skipped too.
     */
    @Test
    void ptxIsPackaged() {
        boolean nvcc = new java.io.File("/usr/local/bin/nvcc").exists();
        boolean packaged = QuantKernelModule.class.getResource(QuantKernelModule.RESOURCE_DIR
                + "qalora_kernels.sm_90.ptx") != null;
        assumeTrue(nvcc || packaged, "built without nvcc: PTX skipped by the build");
        for (String name : new String[] {"qalora_kernels.sm_90.ptx", "qalora_kernels.compute_80.ptx"}) {
            String ptx = new String(QuantKernelModule.readPtx(name), java.nio.charset.StandardCharsets.US_ASCII);
            for (String kernel : new String[] {"qmatmul", "qmatmul_t", "qgemv_b3", "dequantize", "qmatmul_naive"}) {
                assertTrue(ptx.contains(".entry " + kernel + "("), name + " lacks kernel " + kernel);
            }
        }
    }
}
