package org.qalora.worker.export;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.GptqConfig.CheckpointFormat;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.quantize.ModelQuantizer;
import picocli.CommandLine;

/** Models for the export tests, built from the fixtures, and a way to run the export command in this JVM. */
final class ExportFixtures {
    private ExportFixtures() {}

    /** reference/tiny-tokenizer: a 512-piece LLaMA-style tokenizer that fits the fixture model's vocabulary. */
    static Path tinyTokenizer() {
        return Fixtures.root().resolveSibling("reference").resolve("tiny-tokenizer/tokenizer.json");
    }

    /** The fixture GPTQ model with the fixture QA-LoRA adapter merged: real-valued zeros. */
    static Path merged(Path dir) throws IOException {
        Path out = dir.resolve("merged");
        Merger.merge(Fixtures.tinyLlamaGptq().toString(), Fixtures.tinyLlamaAdapter().toString(), out.toString());
        copyTokenizer(out);
        return out;
    }

    /** The fixture's dense model quantized RTN (bits, group), each matrix's zeros passed through {@code zeros}. */
    static Path quantized(Path dir, String name, int bits, int group, UnaryOperator<float[]> zeros) throws IOException {
        Path out = dir.resolve(name);
        GptqConfig gptq = GptqConfig.of(bits, group).withFormat(CheckpointFormat.QALORA_FLOAT_ZEROS);
        try (Checkpoint dense = Checkpoint.open(Fixtures.tinyLlama().toString())) {
            Map<String, QuantizedMatrix> q = ModelQuantizer.quantize(dense, dense.config(), gptq,
                    ModelQuantizer.Method.RTN, null, null, new PrintWriter(new StringWriter()));
            Map<String, QuantizedMatrix> moved = new LinkedHashMap<>();
            q.forEach((k, m) -> moved.put(k, m.withZeros(zeros.apply(m.zeros().clone()))));
            ModelQuantizer.write(dense, dense.config(), gptq, moved, out.toString(), Long.MAX_VALUE,
                    HadoopPaths.defaults());
        }
        copyTokenizer(out);
        return out;
    }

    private static void copyTokenizer(Path model) throws IOException {
        Path tok = tinyTokenizer();
        Files.copy(tok, model.resolve("tokenizer.json"));
        Files.copy(tok.resolveSibling("tokenizer_config.json"), model.resolve("tokenizer_config.json"));
    }

    record Run(int code, String out, String err) {}

    static Run export(String... args) {
        CommandLine cli = new CommandLine(new ExportCommand());
        StringWriter out = new StringWriter(), err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }
}
