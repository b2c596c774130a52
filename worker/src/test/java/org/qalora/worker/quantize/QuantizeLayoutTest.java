package org.qalora.worker.quantize;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.quant.testing.ShardedCopy;
import org.qalora.worker.shard.ModelFiles;
import org.qalora.worker.shard.ShardedWrite;

/**
 * RTN quantization planned from headers and written shard by shard ({@link QuantizeLayout}, what the train
 * pipeline's quantize tasks run) gives the bytes of the in-memory {@link ModelQuantizer}: the same files when one
 * file holds everything, the same tensors when sharded, from a single-file or a sharded dense base.
 */
class QuantizeLayoutTest {
    private static final HadoopPaths PATHS = HadoopPaths.defaults();
    private static final GptqConfig G = GptqConfig.of(4, 32);

    @TempDir
    Path tmp;

    private static void inMemory(String model, Path out) throws IOException {
        try (Checkpoint ck = Checkpoint.open(model)) {
            var q = ModelQuantizer.quantize(ck, ck.config(), G, ModelQuantizer.Method.RTN, null, null,
                    new PrintWriter(new StringWriter()));
            ModelQuantizer.write(ck, ck.config(), G, q, out.toString(), ModelQuantizer.DEFAULT_MAX_SHARD_BYTES, PATHS);
        }
    }

    private static void streamed(String model, Path out, long maxShard) throws IOException {
        QuantizeLayout plan;
        try (Checkpoint ck = Checkpoint.open(model)) {
            plan = QuantizeLayout.plan(ck, G, maxShard);
        }
        Files.createDirectories(out);
        ShardedWrite.writeAll(plan, out.toString(), PATHS, 1);
    }

    @Test
    void streamedRtnEqualsTheInMemoryQuantizer() throws IOException {
        String model = Fixtures.tinyLlama().toString();
        Path reference = tmp.resolve("ref"), oneFile = tmp.resolve("one"), sharded = tmp.resolve("sharded");
        inMemory(model, reference);
        streamed(model, oneFile, ModelQuantizer.DEFAULT_MAX_SHARD_BYTES);
        ModelFiles.assertSameFiles(reference, oneFile);
        streamed(model, sharded, 60_000);
        assertTrue(Files.exists(sharded.resolve(Checkpoint.INDEX_FILE)));
        ModelFiles.assertSameTensors(reference.toString(), sharded.toString());
    }

    @Test
    void aShardedDenseBaseQuantizesAsTheSingleFile() throws IOException {
        Path base = ShardedCopy.of(Fixtures.tinyLlama(), tmp.resolve("base"), 100_000);
        Path a = tmp.resolve("a"), b = tmp.resolve("b");
        streamed(Fixtures.tinyLlama().toString(), a, 60_000);
        streamed(base.toString(), b, 60_000);
        ModelFiles.assertSameFiles(a, b);
    }

    @Test
    void anAlreadyQuantizedBaseIsRefusedSayingWhatToPass() {
        FormatException e = assertThrows(FormatException.class, () -> streamed(Fixtures.tinyLlamaGptq().toString(),
                tmp.resolve("x"), 60_000));
        assertTrue(e.getMessage().contains("already has a quantization_config") && e.getMessage().contains("dense"),
                e.getMessage());
    }
}
