package org.qalora.quant.cuda;

import java.util.List;

/**
 * Runs the CUDA parity checks ({@link CudaParity}, the same ones as the JUnit test) and then the benchmark
 * ({@link CudaBench}), printing a summary; for the GPU machine, which has no Maven. Exit status 0 when every
 * check passed, 1 when one failed, 2 when CUDA is unavailable.
 *
 * <p>Test code: it lives in the test jar, so both jars go on the class path:
 * <pre>java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
 *   -cp quant-kernels-0.1.0-SNAPSHOT.jar:quant-kernels-0.1.0-SNAPSHOT-tests.jar org.qalora.quant.cuda.CudaSelfCheck [--no-bench | --gemv-bench]</pre>
 */
public final class CudaSelfCheck {
    private CudaSelfCheck() {}

    public static void main(String[] args) {
        boolean bench = !List.of(args).contains("--no-bench");
        if (!CudaQuantKernels.available()) {
            System.out.println("CUDA unavailable: " + CudaQuantKernels.unavailableReason());
            System.exit(2);
        }
        CudaQuantKernels gpu = new CudaQuantKernels();
        System.out.println("device: " + gpu.module().driver() + ", kernels from " + gpu.module().ptxName());
        System.out.println("cuBLAS: " + (Cublas.available() ? Cublas.get().soname() : Cublas.unavailableReason()));

        long start = System.nanoTime();
        int failed = 0;
        List<CudaParity.Case> cases = CudaParity.cases();
        CudaQuantKernels fusedOnly = new CudaQuantKernels(Integer.MAX_VALUE);
        for (CudaParity.Case c : cases) {
            List<String> failures = new java.util.ArrayList<>(CudaParity.check(gpu, c));
            if (c.tokens() > 1) {
                CudaParity.check(fusedOnly, c).forEach(f -> failures.add("fused-only policy: " + f));
            }
            if (!failures.isEmpty()) {
                failed++;
                failures.forEach(f -> System.out.println("FAIL " + f));
            }
        }
        List<String> zeros = CudaParity.checkWithZeros(gpu);
        zeros.forEach(f -> System.out.println("FAIL " + f));
        System.out.printf("parity: %d/%d cases passed, withZeros %s (%.1f s)%n", cases.size() - failed, cases.size(),
                zeros.isEmpty() ? "passed" : "FAILED", (System.nanoTime() - start) / 1e9);

        if (List.of(args).contains("--gemv-bench")) {
            new CudaBench(gpu, System.out).runGemv();
        } else if (bench) {
            new CudaBench(gpu, System.out).run();
        }
        System.exit(failed == 0 && zeros.isEmpty() ? 0 : 1);
    }
}
