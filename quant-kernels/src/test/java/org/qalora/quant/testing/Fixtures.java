package org.qalora.quant.testing;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the reference fixtures shipped in the repository ({@code fixtures/}, copied from the HF transformers
 * float64 oracle; see fixtures/README.md). Surefire passes the repository root as {@code qalora.root}; running a
 * test from an IDE falls back to searching upward from the working directory.
 */
public final class Fixtures {
    private Fixtures() {}

    public static Path root() {
        String configured = System.getProperty("qalora.root");
        if (configured != null && Files.isRegularFile(Path.of(configured, "fixtures", "README.md"))) {
            return Path.of(configured, "fixtures");
        }
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("fixtures/README.md"))) {
                return dir.resolve("fixtures");
            }
        }
        throw new IllegalStateException("fixtures/ not found above " + Path.of("").toAbsolutePath()
                + ": run the tests from the repository checkout");
    }

    /** {@code fixtures/tiny-llama/model}: the bf16 HF checkpoint. */
    public static Path tinyLlama() { return root().resolve("tiny-llama/model"); }

    /** {@code fixtures/tiny-llama/gptq-4bit-g32}: the RTN 4-bit g32 GPTQ v1 checkpoint. */
    public static Path tinyLlamaGptq() { return root().resolve("tiny-llama/gptq-4bit-g32"); }

    /** {@code fixtures/tiny-llama/gptq-4bit-g32-qalora}: the QA-LoRA adapter (PEFT layout, mean pooling). */
    public static Path tinyLlamaAdapter() { return root().resolve("tiny-llama/gptq-4bit-g32-qalora"); }

    /** {@code fixtures/tiny-llama/reference.safetensors}: expected logits, losses, gradients, AdamW steps, merged zeros. */
    public static Path reference() { return root().resolve("tiny-llama/reference.safetensors"); }

    /** {@code fixtures/tokenizer/tokenizer.json}: the real 32000-piece tokenizer. */
    public static Path tokenizer() { return root().resolve("tokenizer/tokenizer.json"); }

    /** {@code fixtures/tokenizer/tokenization.json}: HF tokenizers' ids for a set of texts. */
    public static Path tokenizationCases() { return root().resolve("tokenizer/tokenization.json"); }
}
