package org.qalora.worker.export;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gguf.DenseRows;
import org.qalora.quant.gguf.GgmlType;
import org.qalora.quant.gguf.GgufMetadata;
import org.qalora.quant.gguf.GgufWriter;
import org.qalora.quant.gguf.Q41Blocks;
import org.qalora.quant.gguf.Rounding;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;

/**
 * Writes a (merged, quantized) HF LLaMA checkpoint as one GGUF v3 file that llama.cpp loads: the llama
 * architecture keys, the tokenizer, and the weights per {@link ExportPlan} (Q4_1 for quantized projections).
 *
 * <p>Everything that can be checked without reading weights is checked first (model directory, config.json, the
 * tokenizer, every tensor's presence and shape, Q4_1 fit, the output path), so bad input fails before any output
 * exists. The file is written to a temporary name beside the target and renamed when complete
 * ({@link HadoopPaths#writeAtomically}), on any Hadoop file system; tensors are converted one at a time.
 */
public final class GgufExport {

    /**
     * @param tokenizer        tokenizer.json to embed; null: the model directory's
     * @param name             general.name; null: the model directory's name
     * @param overwrite        replace an existing output file
     * @param allowDequantized store projections that do not fit Q4_1 as dequantized F16 instead of refusing
     */
    public record Options(String tokenizer, String name, boolean overwrite, boolean allowDequantized) {}

    /** One written tensor: its GGUF name and type, and how far its stored weights are from the checkpoint's. */
    public record TensorReport(String name, GgmlType type, boolean dequantized, Rounding rounding) {}

    /** What was written, tensor by tensor. */
    public record Report(String output, long bytes, List<TensorReport> tensors, GgufVocabulary vocabulary) {
        /** The largest rounding over the tensors of one type (Q4_1: the projections; F16: dense and dequantized). */
        public Rounding worst(GgmlType type) {
            Rounding r = Rounding.NONE;
            for (TensorReport t : tensors) {
                if (t.type() == type) {
                    r = r.max(t.rounding());
                }
            }
            return r;
        }

        public long count(GgmlType type) {
            return tensors.stream().filter(t -> t.type() == type).count();
        }

        public long dequantized() {
            return tensors.stream().filter(TensorReport::dequantized).count();
        }
    }

    private GgufExport() {}

    /** The GGUF tensor that holds projection {@code p} of layer {@code layer}, e.g. {@code blk.3.attn_q.weight}. */
    public static String tensorName(int layer, org.qalora.worker.model.Projection p) {
        return ExportPlan.tensorName(layer, p);
    }

    public static Report export(String model, String out, Options o, HadoopPaths paths) throws IOException {
        if (!paths.isDirectory(model)) {
            throw new IllegalArgumentException(model + ": no such model directory (give the directory holding"
                    + " config.json and model.safetensors)");
        }
        LlamaConfig config = LlamaConfig.read(model, paths);
        String tokenizer = o.tokenizer() != null ? o.tokenizer() : HadoopPaths.child(model, "tokenizer.json");
        if (!paths.exists(tokenizer)) {
            throw new IllegalArgumentException(tokenizer + " does not exist: a GGUF file carries its tokenizer;"
                    + (o.tokenizer() != null ? " give an HF tokenizer.json with --tokenizer"
                    : " copy the model's tokenizer.json (and tokenizer_config.json) into " + model + " or pass --tokenizer"));
        }
        String tokenizerConfig = HadoopPaths.child(parent(tokenizer), "tokenizer_config.json");
        GgufVocabulary vocab = GgufVocabulary.read(paths.readAllBytes(tokenizer),
                paths.exists(tokenizerConfig) ? paths.readAllBytes(tokenizerConfig) : null, tokenizer,
                config.vocabSize());
        if (paths.exists(out)) {
            if (!o.overwrite()) {
                throw new IllegalArgumentException("--out " + out + " already exists: pass --overwrite to replace it");
            }
            if (paths.isDirectory(out)) {
                throw new IllegalArgumentException("--out " + out + " is a directory; give a file name such as model.gguf");
            }
        }
        try (Checkpoint ck = Checkpoint.open(model, paths)) {
            ExportPlan plan = ExportPlan.of(ck, o.allowDequantized());
            GgufMetadata metadata = LlamaGgufMetadata.of(config, o.name() != null ? o.name() : baseName(model),
                    plan.anyQ41() ? LlamaGgufMetadata.FILE_TYPE_MOSTLY_Q4_1 : LlamaGgufMetadata.FILE_TYPE_MOSTLY_F16);
            vocab.addTo(metadata);
            Map<String, Rounding> rounding = new LinkedHashMap<>();
            List<GgufWriter.Tensor> tensors = new ArrayList<>();
            for (ExportPlan.Tensor t : plan.tensors()) {
                tensors.add(new GgufWriter.Tensor(t.ggufName(), t.dims(), t.type(),
                        os -> rounding.put(t.ggufName(), write(ck, config, t, os))));
            }
            paths.writeAtomically(out, os -> GgufWriter.write(os, metadata, tensors));
            List<TensorReport> reports = new ArrayList<>();
            for (ExportPlan.Tensor t : plan.tensors()) {
                reports.add(new TensorReport(t.ggufName(), t.type(), t.source() == ExportPlan.Source.DEQUANTIZED,
                        rounding.get(t.ggufName())));
            }
            return new Report(out, paths.length(out), List.copyOf(reports), vocab);
        }
    }

    /** Converts one tensor; errors name the checkpoint and tensor. */
    private static Rounding write(Checkpoint ck, LlamaConfig config, ExportPlan.Tensor t, OutputStream os)
            throws IOException {
        long[] dims = t.dims();
        int cols = (int) dims[0], rows = dims.length > 1 ? (int) dims[1] : 1;
        try {
            return switch (t.source()) {
                case DENSE -> DenseRows.write(ck.floats(t.hfName()), rows, cols, t.rowOrder(), t.type(), os);
                case Q4_1 -> Q41Blocks.encode(read(ck, config, t), t.rowOrder(), os);
                case DEQUANTIZED -> DenseRows.write(read(ck, config, t).dequantize(), rows, cols, t.rowOrder(),
                        GgmlType.F16, os);
            };
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(ck.directory() + ": " + t.hfName() + " -> " + t.ggufName() + ": "
                    + e.getMessage(), e);
        }
    }

    private static QuantizedMatrix read(Checkpoint ck, LlamaConfig config, ExportPlan.Tensor t) throws IOException {
        QuantizedMatrix q = GptqCodec.read(ck, t.hfName(), config.quantization());
        for (float[] values : new float[][] {q.scales(), q.zeros()}) {
            for (float x : values) {
                if (!Float.isFinite(x)) {
                    throw new IllegalArgumentException("holds a non-finite scale or zero point " + x);
                }
            }
        }
        return q;
    }

    private static String parent(String location) {
        int slash = location.lastIndexOf('/');
        return slash <= 0 ? "." : location.substring(0, slash);
    }

    private static String baseName(String dir) {
        String d = dir.endsWith("/") ? dir.substring(0, dir.length() - 1) : dir;
        return d.substring(d.lastIndexOf('/') + 1);
    }
}
