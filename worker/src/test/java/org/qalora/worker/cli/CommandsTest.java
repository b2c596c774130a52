package org.qalora.worker.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.merge.MergeCheck;
import picocli.CommandLine;

/** eval-batch and merge driven through picocli on the fixture files, compared with the HF reference. */
class CommandsTest {
    @TempDir
    Path tmp;

    private Path batchFile(boolean int32) throws IOException {
        try (SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            SafetensorsWriter w = new SafetensorsWriter();
            if (int32) {
                w.addInts("input_ids", toInts(ref.longs("input_ids")), 2, 24);
                w.addInts("labels", toInts(ref.longs("labels")), 2, 24);
            } else {
                w.addLongs("input_ids", ref.longs("input_ids"), 2, 24);
                w.addLongs("labels", ref.longs("labels"), 2, 24);
            }
            Path p = tmp.resolve(int32 ? "batch32.safetensors" : "batch64.safetensors");
            w.write(p.toString());
            return p;
        }
    }

    private static int[] toInts(long[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            o[i] = (int) a[i];
        }
        return o;
    }

    private static int run(Object cmd, String... args) {
        return new CommandLine(cmd).execute(args);
    }

    @Test
    void evalBatchWritesLogitsLossAndGradients() throws IOException {
        Path out = tmp.resolve("out.safetensors");
        assertEquals(0, run(new EvalBatchCommand(), "--model", Fixtures.tinyLlamaGptq().toString(),
                "--adapter", Fixtures.tinyLlamaAdapter().toString(), "--batch", batchFile(true).toString(),
                "--out", out.toString(), "--grads", "--threads", "2"));
        try (SafetensorsFile o = SafetensorsFile.open(out.toString());
             SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            assertTrue(o.info("logits").hasShape(2, 24, 512));
            assertEquals(DType.F32, o.info("logits").dtype());
            assertTrue(MergeCheck.relativeError(o.floats("logits"), ref.floats("gptq-4bit-g32-qalora.logits")) <= 1e-5);
            assertEquals(ref.floats("gptq-4bit-g32-qalora.loss")[0], o.floats("loss")[0], 1e-5);
            String key = "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight";
            assertTrue(o.info("grad." + key).hasShape(8, 12));
            assertTrue(MergeCheck.relativeError(o.floats("grad." + key),
                    ref.floats("gptq-4bit-g32-qalora.grad." + key)) <= 1e-4);
            assertEquals(1 + 1 + 28, o.names().size());
        }
    }

    @Test
    void evalBatchSaysWhatItWroteAndRefusesAnExistingOutUnlessOverwrite() throws IOException {
        Path out = tmp.resolve("out.safetensors");
        String[] args = {"--model", Fixtures.tinyLlamaGptq().toString(), "--batch", batchFile(true).toString(),
                "--out", out.toString(), "--threads", "2"};
        java.io.StringWriter said = new java.io.StringWriter();
        CommandLine cli = new CommandLine(new EvalBatchCommand());
        cli.setOut(new java.io.PrintWriter(said));
        assertEquals(0, cli.execute(args));
        assertTrue(said.toString().matches("eval-batch: loss \\d+\\.\\d{6} over \\d+ target tokens; gradients not "
                + "asked for; wrote file:.*out\\.safetensors\\R"), said.toString());
        byte[] first = Files.readAllBytes(out);
        Files.write(out, new byte[] {1, 2, 3});
        assertEquals(2, run(new EvalBatchCommand(), args), "an existing --out is refused");
        assertEquals(3, Files.size(out), "and left alone");
        String[] again = java.util.Arrays.copyOf(args, args.length + 1);
        again[args.length] = "--overwrite";
        assertEquals(0, run(new EvalBatchCommand(), again));
        assertTrue(java.util.Arrays.equals(first, Files.readAllBytes(out)), "replaced with the same result");
    }

    @Test
    void mergeWritesAModelThatEvalBatchReadsWithTheAdapterLogits() throws IOException {
        Path merged = tmp.resolve("merged");
        assertEquals(0, run(new MergeCommand(), "--model", Fixtures.tinyLlamaGptq().toString(),
                "--adapter", Fixtures.tinyLlamaAdapter().toString(), "--out", merged.toString()));
        assertTrue(Files.isRegularFile(merged.resolve("config.json")));
        assertTrue(Files.readString(merged.resolve("config.json")).contains("qalora_float_zeros"));
        Path out = tmp.resolve("merged-out.safetensors");
        assertEquals(0, run(new EvalBatchCommand(), "--model", merged.toString(), "--batch",
                batchFile(false).toString(), "--out", out.toString(), "--threads", "2"));
        try (SafetensorsFile o = SafetensorsFile.open(out.toString());
             SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            assertTrue(MergeCheck.relativeError(o.floats("logits"), ref.floats("gptq-4bit-g32-qalora.merged.logits")) <= 1e-5);
            assertEquals(ref.floats("gptq-4bit-g32-qalora.loss")[0], o.floats("loss")[0], 1e-5);
        }
        // an existing output directory is refused, not overwritten (exit 2: a refused setting) ...
        assertEquals(2, run(new MergeCommand(), "--model", Fixtures.tinyLlamaGptq().toString(),
                "--adapter", Fixtures.tinyLlamaAdapter().toString(), "--out", merged.toString()));
        // ... unless --overwrite: then it is replaced by the same merge, and nothing is left beside it
        assertEquals(0, run(new MergeCommand(), "--model", Fixtures.tinyLlamaGptq().toString(),
                "--adapter", Fixtures.tinyLlamaAdapter().toString(), "--out", merged.toString(), "--overwrite"));
        assertTrue(Files.isRegularFile(merged.resolve("config.json")), "the replaced model");
        try (var left = Files.list(merged.getParent())) {
            assertTrue(left.noneMatch(f -> f.getFileName().toString().startsWith("_tmp-replacing-")), "no temp left");
        }
    }

    @Test
    void badInputGetsAClearErrorAndNoOutput() throws IOException {
        Path out = tmp.resolve("never.safetensors");
        // the bf16 model is not quantized: merging into it must be refused
        assertEquals(2, run(new MergeCommand(), "--model", Fixtures.tinyLlama().toString(),
                "--adapter", Fixtures.tinyLlamaAdapter().toString(), "--out", tmp.resolve("m").toString()));
        assertFalse(Files.exists(tmp.resolve("m")));
        // --grads without labels
        SafetensorsWriter w = new SafetensorsWriter();
        w.addInts("input_ids", new int[] {1, 2, 3, 4}, 1, 4);
        Path noLabels = tmp.resolve("nolabels.safetensors");
        w.write(noLabels.toString());
        assertEquals(2, run(new EvalBatchCommand(), "--model", Fixtures.tinyLlamaGptq().toString(), "--adapter",
                Fixtures.tinyLlamaAdapter().toString(), "--batch", noLabels.toString(), "--out", out.toString(), "--grads"));
        // token id outside the vocabulary
        SafetensorsWriter bad = new SafetensorsWriter();
        bad.addInts("input_ids", new int[] {1, 2, 512, 4}, 1, 4);
        Path badIds = tmp.resolve("badids.safetensors");
        bad.write(badIds.toString());
        assertEquals(2, run(new EvalBatchCommand(), "--model", Fixtures.tinyLlamaGptq().toString(), "--batch",
                badIds.toString(), "--out", out.toString()));
        assertFalse(Files.exists(out));
    }

    @Test
    void evalBatchRefusesABadDeviceOrPrecisionBeforeAnyWork() throws IOException {
        Path out = tmp.resolve("never.safetensors");
        String batch = batchFile(true).toString();
        String model = Fixtures.tinyLlamaGptq().toString();
        assertEquals(2, run(new EvalBatchCommand(), "--model", model, "--batch", batch, "--out", out.toString(),
                "--device", "gpu:x"));
        assertEquals(2, run(new EvalBatchCommand(), "--model", model, "--batch", batch, "--out", out.toString(),
                "--precision", "bf16")); // on the CPU
        assertEquals(2, run(new EvalBatchCommand(), "--model", model, "--batch", batch, "--out", out.toString(),
                "--precision", "fp16"));
        if (org.qalora.worker.backend.cuda.CudaBackend.unusableReason(7) != null) {
            assertEquals(2, run(new EvalBatchCommand(), "--model", model, "--batch", batch, "--out", out.toString(),
                    "--device", "gpu:7"));
        }
        assertFalse(Files.exists(out));
    }
}
