package org.qalora.worker.export;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.qalora.quant.gguf.GgmlType;
import org.qalora.quant.gguf.Rounding;
import org.qalora.quant.io.HadoopPaths;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code qalora export --format gguf}: a merged (or plain GPTQ / dense) model as one GGUF file for llama.cpp. */
@Command(name = "export", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Export a model directory (merged QA-LoRA with float zero points, GPTQ, or dense HF) to a format"
                + " other engines run. gguf: one GGUF v3 file for llama.cpp / Ollama, quantized projections as Q4_1"
                + " (exact up to the fp16 rounding of each group's offset), tokenizer included.",
            "The file is written to a temporary name and renamed when complete (any Hadoop path)."})
public final class ExportCommand implements Callable<Integer> {
    /** Exit code for bad input or I/O failures, reported as one line (as quantize does). */
    static final int EXIT_BAD_INPUT = 2;

    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "model directory (config.json, safetensors, tokenizer.json)")
    String model;
    @Option(names = "--format", required = true, paramLabel = "F", description = "gguf (the only format so far)")
    String format;
    @Option(names = "--out", required = true, paramLabel = "FILE", description = "output file, e.g. model.gguf (local, hdfs://, s3a://)")
    String out;
    @Option(names = "--overwrite", description = "replace an existing --out file")
    boolean overwrite;
    @Option(names = "--allow-dequantized", description = "store projections that do not fit Q4_1 (8-bit codes, groups not a multiple of 32) as dequantized F16 instead of refusing")
    boolean allowDequantized;
    @Option(names = "--tokenizer", paramLabel = "FILE", description = "tokenizer.json to embed; default: the model directory's")
    String tokenizer;
    @Option(names = "--name", paramLabel = "NAME", description = "general.name in the file; default: the model directory's name")
    String name;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        try {
            if (!format.trim().equalsIgnoreCase("gguf")) {
                throw new IllegalArgumentException("--format " + format + " is not supported: the only export format is gguf");
            }
            GgufExport.Report r = GgufExport.export(model, out,
                    new GgufExport.Options(tokenizer, name, overwrite, allowDequantized), HadoopPaths.defaults());
            print(r, spec.commandLine().getOut());
            return 0;
        } catch (IllegalArgumentException | IllegalStateException | java.io.IOException | java.io.UncheckedIOException e) {
            err.println("error: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }

    private static void print(GgufExport.Report r, PrintWriter o) {
        GgufVocabulary v = r.vocabulary();
        o.printf(Locale.ROOT, "wrote %s: GGUF v3, %.1f MB, %d tensors (Q4_1 %d, F16 %d of which %d dequantized, F32 %d);"
                        + " vocabulary %d tokens (bos %d, eos %d, add_bos %b)%n", r.output(), r.bytes() / 1e6,
                r.tensors().size(), r.count(GgmlType.Q4_1), r.count(GgmlType.F16), r.dequantized(),
                r.count(GgmlType.F32), v.size(), v.bosId(), v.eosId(), v.addBos());
        line(o, "Q4_1 weights vs S*(q-Z')", r.worst(GgmlType.Q4_1), "|S*Z'|");
        line(o, "F16 weights vs the checkpoint", r.worst(GgmlType.F16), "|w|");
        if (v.mergeGaps() > 0) {
            o.printf(Locale.ROOT, "warning: %d merge pairs of the tokenizer are not in the order llama.cpp's scores can"
                    + " express; llama.cpp may tokenize some words differently%n", v.mergeGaps());
        }
        o.flush();
    }

    private static void line(PrintWriter o, String what, Rounding r, String magnitude) {
        if (r.maxMagnitude() == 0 && r.maxError() == 0) {
            return;
        }
        o.printf(Locale.ROOT, "%s: max |error| %.3g, at most %.3f of the fp16 rounding bound (largest %s %.3g)%n",
                what, r.maxError(), r.maxErrorRatio(), magnitude, r.maxMagnitude());
    }
}
