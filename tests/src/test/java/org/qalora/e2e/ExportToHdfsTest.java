package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.fs.FileStatus;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.eval.CliRun;
import org.qalora.quant.gguf.GgmlType;
import org.qalora.quant.gguf.GgufFile;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.testing.Fixtures;
import org.qalora.quant.testing.Q41Check;
import org.qalora.worker.export.RopeRowOrder;
import org.qalora.worker.merge.Merger;

/**
 * {@code qalora export} from a model on HDFS to a file on HDFS (a real MiniDFSCluster): the same bytes as a local
 * export, readable in place, an existing file refused without --overwrite, and no temporary file left behind.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class ExportToHdfsTest {
    @TempDir
    static Path dir;
    static TestCluster cluster;
    static Path merged;

    @BeforeAll
    static void start() throws IOException {
        cluster = new TestCluster(dir);
        merged = dir.resolve("merged");
        Merger.merge(Fixtures.tinyLlamaGptq().toString(), Fixtures.tinyLlamaAdapter().toString(), merged.toString());
        Path tok = Fixtures.root().resolveSibling("reference").resolve("tiny-tokenizer");
        Files.copy(tok.resolve("tokenizer.json"), merged.resolve("tokenizer.json"));
        Files.copy(tok.resolve("tokenizer_config.json"), merged.resolve("tokenizer_config.json"));
        cluster.put(merged, "/models/merged");
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void exportsFromHdfsToHdfsAtomically() throws IOException {
        Path local = dir.resolve("local.gguf");
        CliRun l = CliRun.of("export", "--model", merged.toString(), "--format", "gguf", "--out", local.toString());
        assertEquals(0, l.code(), l.err());
        String out = cluster.uri("/out/model.gguf");
        CliRun h = CliRun.of("export", "--model", cluster.uri("/models/merged"), "--format", "gguf", "--out", out);
        assertEquals(0, h.code(), h.out() + h.err());
        assertTrue(h.out().contains("wrote " + out), h.out());

        HadoopPaths paths = new HadoopPaths(cluster.hdfs.getConfiguration(0));
        byte[] onHdfs = paths.readAllBytes(out);
        // general.name is the model directory's name in both: "merged"
        assertArrayEquals(Files.readAllBytes(local), onHdfs, "the same file, whichever file system");
        GgufFile f = GgufFile.open(out, paths);
        assertEquals(GgmlType.Q4_1, f.tensor("blk.1.attn_q.weight").type());
        try (Checkpoint ck = Checkpoint.open(merged.toString())) {
            Q41Check.Result r = Q41Check.compare(GptqCodec.read(ck, "model.layers.1.self_attn.q_proj"),
                    f.bytes("blk.1.attn_q.weight"), RopeRowOrder.of(4, 32));
            assertTrue(r.holds(), r.toString());
        }

        CliRun again = CliRun.of("export", "--model", cluster.uri("/models/merged"), "--format", "gguf", "--out", out);
        assertEquals(2, again.code());
        assertTrue(again.err().contains("already exists: pass --overwrite"), again.err());
        CliRun replace = CliRun.of("export", "--model", cluster.uri("/models/merged"), "--format", "gguf", "--out", out,
                "--overwrite", "--name", "renamed");
        assertEquals(0, replace.code(), replace.err());
        assertEquals("renamed", GgufFile.open(out, paths).metadata().string("general.name"));
        FileStatus[] listing = cluster.fs().listStatus(new org.apache.hadoop.fs.Path(cluster.uri("/out")));
        assertEquals("[model.gguf]", Arrays.toString(Arrays.stream(listing).map(s -> s.getPath().getName()).toArray()),
                "no temporary file is left beside the output");
    }
}
