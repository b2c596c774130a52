package org.qalora.worker.quantize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.GptqConfig.CheckpointFormat;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.model.Projection;
import picocli.CommandLine;

class QuantizeCommandTest {
    @TempDir
    Path dir;

    record Run(int exitCode, String out, String err) {}

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = new CommandLine(new QuantizeCommand());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    /** The fixture model plus a tokenizer, as a user's model directory would look. */
    private Path modelWithTokenizer() throws IOException {
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        try (Stream<Path> files = Files.list(Fixtures.tinyLlama())) {
            for (Path f : files.toList()) {
                Files.copy(f, model.resolve(f.getFileName()));
            }
        }
        Files.copy(Fixtures.root().resolve("tokenizer/tokenizer.json"), model.resolve("tokenizer.json"));
        Files.copy(Fixtures.root().resolve("tokenizer/tokenizer_config.json"), model.resolve("tokenizer_config.json"));
        return model;
    }

    /**
     * RTN 4-bit g32 in the v1 format reproduces the fixture checkpoint (made by the reference RTN quantizer and
     * saved by HF) byte for byte: codes, scales, zeros, g_idx, the copied bf16 tensors and the file layout.
     */
    @Test
    void rtnV1ReproducesTheFixtureCheckpointExactly() throws IOException {
        Path model = modelWithTokenizer();
        Path out = dir.resolve("q");
        Run r = run("--model", model.toString(), "--bits", "4", "--group-size", "32", "--method", "rtn",
                "--format", "gptq", "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertArrayEquals(Files.readAllBytes(Fixtures.tinyLlamaGptq().resolve("model.safetensors")),
                Files.readAllBytes(out.resolve("model.safetensors")));
        LlamaConfig config = LlamaConfig.read(out.toString());
        assertEquals(new GptqConfig(4, 32, false, false, false, 0.01, true, CheckpointFormat.GPTQ), config.quantization());
        assertTrue(Files.isRegularFile(out.resolve("quantize_config.json")));
        assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")));
        assertTrue(Files.isRegularFile(out.resolve("tokenizer_config.json")));
        assertTrue(Files.isRegularFile(out.resolve("generation_config.json")));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(0, s.filter(p -> p.getFileName().toString().startsWith("_tmp-")).count());
        }
    }

    /** The default v2 format holds the same matrices as the v1 fixture once decoded. */
    @Test
    void rtnV2DecodesToTheFixtureMatrices() throws IOException {
        Path out = dir.resolve("q2");
        Run r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--out", out.toString(),
                "--max-shard-size", "200000");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(Files.isRegularFile(out.resolve(Checkpoint.INDEX_FILE)), "small shard size gives shards");
        try (Checkpoint ours = Checkpoint.open(out.toString());
             Checkpoint fixture = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            assertEquals(CheckpointFormat.GPTQ_V2, ours.config().quantization().format());
            for (int l = 0; l < 2; l++) {
                for (Projection p : Projection.values()) {
                    assertEquals(GptqCodec.read(fixture, p.prefix(l)), GptqCodec.read(ours, p.prefix(l)), p.prefix(l));
                }
            }
            assertArrayEquals(fixture.bytes("lm_head.weight"), ours.bytes("lm_head.weight"));
        }
    }

    @Test
    void badOptionsFailClearlyAndWriteNothing() throws IOException {
        Path out = dir.resolve("never");
        Run r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "48", "--out", out.toString());
        assertEquals(QuantizeCommand.EXIT_BAD_INPUT, r.exitCode());
        assertTrue(r.err().startsWith("error: ") && !r.err().contains("\tat "), "one line, no stack trace: " + r.err());
        assertTrue(r.err().contains("--group-size 48 does not divide the input dimension 128"), r.err());
        assertFalse(Files.exists(out));

        r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "5", "--group-size", "32", "--out", out.toString());
        assertTrue(r.err().contains("unsupported bit width 5"), r.err());
        r = run("--model", Fixtures.tinyLlamaGptq().toString(), "--bits", "4", "--group-size", "32", "--out", out.toString());
        assertTrue(r.err().contains("already has a quantization_config"), r.err());
        r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--method", "gptq",
                "--out", out.toString());
        assertTrue(r.err().contains("--calibration"), r.err());
        assertFalse(Files.exists(out));

        r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--device", "gpu:q",
                "--out", out.toString());
        assertTrue(r.err().contains("device 'gpu:q' is not one of"), r.err());
        String why = org.qalora.worker.backend.cuda.CudaBackend.unusableReason(7);
        if (why != null) {
            r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--method", "gptq",
                    "--calibration", calibrationFile(dir, 2, 16, 1).toString(), "--device", "gpu:7", "--out", out.toString());
            assertEquals(QuantizeCommand.EXIT_BAD_INPUT, r.exitCode());
            assertTrue(r.err().contains("gpu:7") && r.err().contains(why), r.err());
        }
        assertFalse(Files.exists(out));

        r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--gptq-solve", "cuda",
                "--out", out.toString());
        assertTrue(r.err().contains("--gptq-solve must be auto, cpu or gpu"), r.err());
        String noSolve = org.qalora.quant.cuda.CudaGptqSolve.unusableReason(0);
        if (noSolve != null) { // asked for, but no GPU: refused with the reason, not solved on the CPU instead
            r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--method", "gptq",
                    "--calibration", calibrationFile(dir, 2, 16, 1).toString(), "--gptq-solve", "gpu", "--out",
                    out.toString());
            assertEquals(QuantizeCommand.EXIT_BAD_INPUT, r.exitCode());
            assertTrue(r.err().contains("the GPTQ solve was set to gpu but GPU 0 cannot run it: " + noSolve), r.err());
        }
        assertFalse(Files.exists(out));

        Files.createDirectories(out);
        Files.writeString(out.resolve("old.txt"), "old");
        r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--out", out.toString());
        assertTrue(r.err().contains("already exists: choose a new directory, or pass --overwrite"), r.err());
        assertTrue(Files.exists(out.resolve("old.txt")), "refused: left alone");
        r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "4", "--group-size", "32", "--out", out.toString(),
                "--overwrite");
        assertEquals(0, r.exitCode(), r.err());
        assertFalse(Files.exists(out.resolve("old.txt")), "replaced");
        assertTrue(Files.exists(out.resolve("config.json")));
        try (var left = Files.list(dir)) {
            assertTrue(left.noneMatch(p -> p.getFileName().toString().startsWith("_tmp-")), "no temporary left");
        }
    }

    static Path calibrationFile(Path dir, int sequences, int seqLen, long seed) throws IOException {
        Random rnd = new Random(seed);
        long[] ids = new long[sequences * seqLen];
        for (int j = 0; j < ids.length; j++) {
            ids[j] = rnd.nextInt(512);
        }
        Path file = dir.resolve("calibration.safetensors");
        new SafetensorsWriter().addLongs(CalibrationData.TENSOR, ids, sequences, seqLen).write(file.toString());
        return file;
    }

    @Test
    void gptqThroughTheCommandWritesALoadableCheckpoint() throws IOException {
        Path calibration = calibrationFile(dir, 4, 32, 1);
        Path out = dir.resolve("gptq");
        Run r = run("--model", Fixtures.tinyLlama().toString(), "--bits", "3", "--group-size", "32", "--method", "gptq",
                "--calibration", calibration.toString(), "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("gptq: layer 2/2 quantized"), r.out());
        // --gptq-solve auto with --device cpu (both defaults): the CPU, even where a GPU could solve
        assertTrue(r.out().contains("gptq: inverse-Hessian solve on cpu"), r.out());
        try (Checkpoint c = Checkpoint.open(out.toString())) {
            QuantizedMatrix m = GptqCodec.read(c, "model.layers.1.mlp.down_proj");
            assertEquals(3, m.bits());
            assertEquals(384, m.inFeatures());
        }
    }
}
