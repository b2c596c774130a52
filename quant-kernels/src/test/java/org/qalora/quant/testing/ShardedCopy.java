package org.qalora.quant.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsWriter;

/** A model directory re-written as HF shards (index + model-0000k-of-0000n files), for tests of sharded reading. */
public final class ShardedCopy {
    private ShardedCopy() {}

    /**
     * Copies {@code model}'s tensors into shards of at most {@code maxShard} bytes under {@code out}, and every other
     * file (config.json, tokenizer files) as is.
     *
     * @throws IllegalStateException when the tensors fit in one file (the copy would not be sharded)
     */
    public static Path of(Path model, Path out, long maxShard) throws IOException {
        try (Checkpoint single = Checkpoint.open(model.toString())) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (String name : single.names()) {
                w.copy(single, name);
            }
            List<String> files = w.writeCheckpoint(out.toString(), maxShard, HadoopPaths.defaults());
            if (!files.contains(Checkpoint.INDEX_FILE)) {
                throw new IllegalStateException(model + " fits in one file of " + maxShard + " bytes: not sharded");
            }
        }
        try (Stream<Path> s = Files.list(model)) {
            for (Path f : s.toList()) {
                String name = f.getFileName().toString();
                if (Files.isRegularFile(f) && !name.endsWith(".safetensors") && !name.endsWith(".index.json")) {
                    Files.copy(f, out.resolve(name));
                }
            }
        }
        return out;
    }
}
