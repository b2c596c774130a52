package org.qalora.worker.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.gguf.GgmlType;
import org.qalora.quant.gguf.GgufFile;
import org.qalora.quant.gguf.Half;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.model.Projection;

/**
 * Bad input is refused before anything is written, with the file, tensor or field and the fix named; what does not
 * fit Q4_1 is refused or, with --allow-dequantized, stored as F16; a failure while writing leaves no file behind.
 */
class ExportRefusalsTest {
    @TempDir
    static Path dir;
    static Path merged;

    @BeforeAll
    static void models() throws IOException {
        merged = ExportFixtures.merged(dir);
    }

    private static ExportFixtures.Run export(Path model, Path out, String... extra) {
        String[] args = Stream.concat(Stream.of("--model", model.toString(), "--format", "gguf", "--out", out.toString()),
                Stream.of(extra)).toArray(String[]::new);
        return ExportFixtures.export(args);
    }

    private static void refused(ExportFixtures.Run r, String... parts) {
        assertEquals(ExportCommand.EXIT_BAD_INPUT, r.code(), r.out() + r.err());
        for (String p : parts) {
            assertTrue(r.err().contains(p), "expected '" + p + "' in: " + r.err());
        }
    }

    private static boolean nothingWritten(Path parent) throws IOException {
        if (!Files.exists(parent)) {
            return true;
        }
        try (Stream<Path> s = Files.list(parent)) {
            return s.findAny().isEmpty();
        }
    }

    private static Path copyOf(Path model, String name) throws IOException {
        Path copy = dir.resolve(name);
        Files.createDirectories(copy);
        try (Stream<Path> s = Files.list(model)) {
            for (Path p : s.toList()) {
                Files.copy(p, copy.resolve(p.getFileName()));
            }
        }
        return copy;
    }

    @Test
    void badArgumentsAndMissingFiles() throws IOException {
        Path out = dir.resolve("refused/model.gguf");
        refused(ExportFixtures.export("--model", merged.toString(), "--format", "onnx", "--out", out.toString()),
                "--format onnx is not supported");
        refused(export(dir.resolve("nope"), out), "nope: no such model directory");
        Path noTokenizer = copyOf(merged, "no-tokenizer");
        Files.delete(noTokenizer.resolve("tokenizer.json"));
        refused(export(noTokenizer, out), "tokenizer.json does not exist", "--tokenizer");
        assertEquals(0, export(noTokenizer, dir.resolve("with-tokenizer.gguf"), "--tokenizer",
                ExportFixtures.tinyTokenizer().toString()).code(), "--tokenizer supplies it");
        Path noHidden = copyOf(merged, "no-hidden");
        String config = Files.readString(noHidden.resolve("config.json")).replace("\"hidden_size\"", "\"hidden_sizes\"");
        Files.writeString(noHidden.resolve("config.json"), config);
        refused(export(noHidden, out), "config.json: required field \"hidden_size\" is missing");
        Path bigTokenizer = copyOf(merged, "big-tokenizer");
        Files.copy(org.qalora.quant.testing.Fixtures.root().resolve("tokenizer/tokenizer.json"),
                bigTokenizer.resolve("tokenizer.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        refused(export(bigTokenizer, out), "ids up to 31999", "vocab_size is 512");
        Path llama3 = copyOf(merged, "llama3");
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var cfg = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(llama3.resolve("config.json").toFile());
        cfg.putObject("rope_parameters").put("rope_type", "llama3").put("rope_theta", 10000.0).put("factor", 8.0)
                .put("low_freq_factor", 1.0).put("high_freq_factor", 4.0).put("original_max_position_embeddings", 256);
        json.writeValue(llama3.resolve("config.json").toFile(), cfg);
        refused(export(llama3, out), "llama3 rope scaling is not exported");
        assertTrue(nothingWritten(out.getParent()), "refusals write nothing");
    }

    @Test
    void anExistingOutputNeedsOverwrite() throws IOException {
        Path out = dir.resolve("existing.gguf");
        Files.writeString(out, "old");
        refused(export(merged, out), "already exists", "--overwrite");
        assertEquals("old", Files.readString(out));
        assertEquals(0, export(merged, out, "--overwrite").code());
        assertEquals(GgmlType.Q4_1, GgufFile.open(out.toString(), HadoopPaths.defaults()).tensor("blk.0.attn_q.weight").type());
    }

    @Test
    void eightBitCodesAreRefusedOrStoredDequantized() throws IOException {
        Path eight = ExportFixtures.quantized(dir, "eight-bit", 8, 32, z -> z);
        Path out = dir.resolve("eight/model.gguf");
        refused(export(eight, out), "do not fit GGUF Q4_1", "model.layers.0.self_attn.q_proj (8-bit codes",
                "--bits 4", "--allow-dequantized");
        assertTrue(nothingWritten(out.getParent()));

        ExportFixtures.Run r = export(eight, out, "--allow-dequantized");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("F16 16 of which 14 dequantized"), r.out());
        GgufFile f = GgufFile.open(out.toString(), HadoopPaths.defaults());
        assertEquals(1, f.metadata().integer("general.file_type"), "no Q4_1 left: MOSTLY_F16");
        try (Checkpoint ck = Checkpoint.open(eight.toString())) {
            QuantizedMatrix q = GptqCodec.read(ck, Projection.K.prefix(1));
            float[] w = q.dequantize();                                              // [out, in]
            float[] stored = f.floats("blk.1.attn_k.weight");
            int[] order = RopeRowOrder.of(2, 32);
            for (int r2 = 0; r2 < q.outFeatures(); r2++) {
                for (int i = 0; i < q.inFeatures(); i++) {
                    float ours = w[order[r2] * q.inFeatures() + i];
                    assertTrue(Math.abs(stored[r2 * q.inFeatures() + i] - ours) <= Half.bound(ours), "row " + r2);
                }
            }
        }
    }

    @Test
    void groupsThatAreNotWholeBlocksAreRefused() throws IOException {
        Path g16 = ExportFixtures.quantized(dir, "group-16", 4, 16, z -> z);
        refused(export(g16, dir.resolve("g16.gguf")), "groups of 16", "a group must be whole blocks");
    }

    @Test
    void aFailureWhileWritingLeavesNoFile() throws IOException {
        // one zero point so large that m = -S Z' overflows a half: found only when that tensor is converted
        Path huge = ExportFixtures.quantized(dir, "huge-zero", 4, 32, z -> {
            z[z.length - 1] = 3e7f;
            return z;
        });
        Path outDir = dir.resolve("partial");
        ExportFixtures.Run r = export(huge, outDir.resolve("model.gguf"));
        refused(r, "model.layers.0.self_attn.q_proj -> blk.0.attn_q.weight", "largest half");
        assertTrue(nothingWritten(outDir), "the temporary file is removed and no model.gguf appears");
        assertFalse(new String(r.err().getBytes(StandardCharsets.UTF_8), StandardCharsets.UTF_8).isBlank());
    }
}
