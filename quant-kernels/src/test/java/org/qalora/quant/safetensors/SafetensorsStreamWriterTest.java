package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;

class SafetensorsStreamWriterTest {

    /** Every tensor of the fixture model, streamed from the checkpoint, gives the bytes the in-memory writer gives. */
    @Test
    void streamedFileEqualsTheInMemoryWritersBytes() throws IOException {
        try (Checkpoint ck = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            SafetensorsWriter w = new SafetensorsWriter();
            List<TensorInfo> infos = new ArrayList<>();
            for (String name : ck.names()) {
                w.copy(ck, name);
                infos.add(ck.info(name));
            }
            ByteArrayOutputStream inMemory = new ByteArrayOutputStream();
            w.writeTo(inMemory);
            ByteArrayOutputStream streamed = new ByteArrayOutputStream();
            List<String> asked = new ArrayList<>();
            SafetensorsStreamWriter.write(streamed, infos.reversed(), Map.of(), (t, out) -> {
                asked.add(t.name());
                ck.copyTo(t.name(), out);
            });
            assertArrayEquals(inMemory.toByteArray(), streamed.toByteArray());
            assertTrue(asked.size() == infos.size(), "each tensor asked for once");
            // the same through Hadoop streams (positional reads, as on HDFS) rather than a mapping
            try (Checkpoint remote = Checkpoint.open(Fixtures.tinyLlamaGptq().toString(),
                    new HadoopPaths(new org.apache.hadoop.conf.Configuration(), false))) {
                ByteArrayOutputStream viaStreams = new ByteArrayOutputStream();
                SafetensorsStreamWriter.write(viaStreams, infos, Map.of(), (t, out) -> remote.copyTo(t.name(), out));
                assertArrayEquals(inMemory.toByteArray(), viaStreams.toByteArray());
            }
        }
    }

    @Test
    void aTensorOfAnotherSizeThanPlannedIsRefusedNamingIt() {
        TensorInfo t = new TensorInfo("x.weight", DType.F32, new long[] {2, 3});
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> SafetensorsStreamWriter.write(
                new ByteArrayOutputStream(), List.of(t), Map.of(), (info, out) -> out.write(new byte[20])));
        assertTrue(e.getMessage().contains("x.weight F32 [2, 3] needs 24 bytes but its source gave 20"), e.getMessage());
    }

    @Test
    void streamedShardsReadBackThroughTheIndex(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws IOException {
        try (Checkpoint ck = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            List<TensorInfo> infos = new ArrayList<>();
            for (String name : ck.names()) {
                infos.add(ck.info(name));
            }
            ShardLayout layout = ShardLayout.plan(infos, 100_000);
            assertTrue(layout.count() > 2, "several shards: " + layout.count());
            HadoopPaths paths = HadoopPaths.defaults();
            for (int s = 0; s < layout.count(); s++) {
                int shard = s;
                paths.writeAtomically(dir.resolve(layout.fileName(s)).toString(),
                        out -> SafetensorsStreamWriter.write(out, layout.shard(shard), Map.of(),
                                (t, o) -> o.write(ck.bytes(t.name()))));
            }
            byte[] index = layout.indexJson();
            paths.writeAtomically(dir.resolve(Checkpoint.INDEX_FILE).toString(), out -> out.write(index));
            try (Checkpoint back = Checkpoint.open(dir.toString())) {
                for (TensorInfo t : infos) {
                    assertArrayEquals(ck.bytes(t.name()), back.bytes(t.name()), t.name());
                }
            }
        }
    }
}
