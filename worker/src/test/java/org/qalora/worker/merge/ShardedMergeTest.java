package org.qalora.worker.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.testing.Fixtures;
import org.qalora.quant.testing.ShardedCopy;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.shard.ModelFiles;
import org.qalora.worker.train.AdapterState;

/**
 * The streaming, sharded merge ({@link ShardedMerge}: what each Spark merge task does, here in one process) against
 * the in-memory single-file {@link Merger}: the same tensors, byte for byte, for QA-LoRA (float zero points) and
 * plain LoRA (float32 weights), from a single-file or a sharded base; a valid HF index; clear refusals.
 */
class ShardedMergeTest {
    private static final HadoopPaths PATHS = HadoopPaths.defaults();
    private static final long SMALL_SHARDS = 60_000; // the fixture GPTQ model's merged tensors are ~180 KB in all

    @TempDir
    Path tmp;

    @Test
    void qaloraShardedMergeEqualsTheSingleFileMergeTensorForTensor() throws IOException {
        String model = Fixtures.tinyLlamaGptq().toString(), adapter = Fixtures.tinyLlamaAdapter().toString();
        Path single = tmp.resolve("single"), sharded = tmp.resolve("sharded"), oneFile = tmp.resolve("one-file");
        try (CpuBackend be = new CpuBackend(2)) {
            Merger.merge(LlamaModel.load(model, be), PeftAdapter.read(adapter), single.toString(), PATHS);
        }
        Merger.Report r = ShardedMerge.merge(model, adapter, sharded.toString(), SMALL_SHARDS, PATHS);
        assertTrue(r.relativeLogitError() <= Merger.LOGIT_TOLERANCE, "probe error " + r.relativeLogitError());
        assertEquals(14, r.mergedProjections(), "2 layers x 7 projections");
        assertTrue(Files.exists(sharded.resolve(Checkpoint.INDEX_FILE)));
        assertFalse(Files.exists(sharded.resolve(Checkpoint.SINGLE_FILE)));
        ModelFiles.assertSameTensors(single.toString(), sharded.toString());
        assertEquals(Files.readString(single.resolve(LlamaConfig.CONFIG_FILE)),
                Files.readString(sharded.resolve(LlamaConfig.CONFIG_FILE)));

        // With room for everything, the streamed merge writes model.safetensors byte-identical to the in-memory one.
        ShardedMerge.merge(model, adapter, oneFile.toString(), 5_000_000_000L, PATHS);
        ModelFiles.assertSameFiles(single, oneFile);
    }

    /** The index is what HF transformers reads: every tensor mapped to an existing shard, total_size the data bytes. */
    @Test
    void theIndexIsValid() throws IOException {
        Path out = tmp.resolve("out");
        ShardedMerge.merge(Fixtures.tinyLlamaGptq().toString(), Fixtures.tinyLlamaAdapter().toString(), out.toString(),
                SMALL_SHARDS, PATHS);
        JsonNode index = new ObjectMapper().readTree(out.resolve(Checkpoint.INDEX_FILE).toFile());
        JsonNode map = index.get("weight_map");
        TreeSet<String> shardFiles = new TreeSet<>();
        map.properties().forEach(e -> shardFiles.add(e.getValue().asText()));
        int n = shardFiles.size();
        assertTrue(n >= 3, "several shards: " + shardFiles);
        for (int k = 1; k <= n; k++) {
            assertTrue(shardFiles.contains(String.format("model-%05d-of-%05d.safetensors", k, n)), shardFiles.toString());
        }
        long total = 0;
        try (Checkpoint ck = Checkpoint.open(out.toString())) {
            assertEquals(new TreeSet<>(ck.names()), new TreeSet<>(iterable(map.fieldNames())));
            for (String name : ck.names()) {
                total += ck.info(name).byteSize();
                assertEquals(map.get(name).asText(), Path.of(ck.file(name).location()).getFileName().toString());
            }
        }
        assertEquals(total, index.get("metadata").get("total_size").asLong());
        for (String f : shardFiles) {
            // Within the limit (plus its header), or a tensor larger than the limit alone (the embedding), as HF does.
            long tensors = 0;
            for (var e : map.properties()) {
                tensors += e.getValue().asText().equals(f) ? 1 : 0;
            }
            assertTrue(Files.size(out.resolve(f)) <= SMALL_SHARDS + 4096 || tensors == 1, f + ": " + tensors);
        }
    }

    private static List<String> iterable(java.util.Iterator<String> it) {
        List<String> out = new java.util.ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }

    /**
     * The check the merge job runs on an executor refuses a merged directory that is not base + this adapter: here
     * the adapter's lora_alpha doubled after the merge (the same weights, twice the scaling).
     */
    @Test
    void theCheckRefusesAMergedModelThatIsNotBasePlusTheAdapter() throws IOException {
        String model = Fixtures.tinyLlamaGptq().toString();
        Path out = tmp.resolve("merged");
        ShardedMerge.merge(model, Fixtures.tinyLlamaAdapter().toString(), out.toString(), SMALL_SHARDS, PATHS);
        Path other = Files.createDirectories(tmp.resolve("alpha-doubled"));
        Files.copy(Fixtures.tinyLlamaAdapter().resolve(PeftAdapter.WEIGHTS_FILE), other.resolve(PeftAdapter.WEIGHTS_FILE));
        Files.writeString(other.resolve(PeftAdapter.CONFIG_FILE), Files.readString(
                Fixtures.tinyLlamaAdapter().resolve(PeftAdapter.CONFIG_FILE)).replace("\"lora_alpha\": 16", "\"lora_alpha\": 32"));
        MergeLayout layout;
        try (Checkpoint ck = Checkpoint.open(model)) {
            layout = MergeLayout.plan(ck, other.toString(), SMALL_SHARDS, PATHS);
        }
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> MergeVerifier.verify(layout, model, other.toString(), out.toString(), PATHS, "cpu", 2));
        assertTrue(e.getMessage().contains("not within " + Merger.LOGIT_TOLERANCE) && e.getMessage().contains(
                "it is not published"), e.getMessage());
        // and the right adapter passes
        try (Checkpoint ck = Checkpoint.open(model)) {
            MergeLayout right = MergeLayout.plan(ck, Fixtures.tinyLlamaAdapter().toString(), SMALL_SHARDS, PATHS);
            assertTrue(MergeVerifier.verify(right, model, Fixtures.tinyLlamaAdapter().toString(), out.toString(), PATHS, "cpu", 2)
                    .relativeLogitError() <= Merger.LOGIT_TOLERANCE);
        }
    }

    @Test
    void aShardedBaseMergesToTheSameFilesAsTheSingleFileBase() throws IOException {
        Path base = ShardedCopy.of(Fixtures.tinyLlamaGptq(), tmp.resolve("base-sharded"), 50_000);
        String adapter = Fixtures.tinyLlamaAdapter().toString();
        Path fromSingle = tmp.resolve("a"), fromSharded = tmp.resolve("b");
        ShardedMerge.merge(Fixtures.tinyLlamaGptq().toString(), adapter, fromSingle.toString(), SMALL_SHARDS, PATHS);
        ShardedMerge.merge(base.toString(), adapter, fromSharded.toString(), SMALL_SHARDS, PATHS);
        ModelFiles.assertSameFiles(fromSingle, fromSharded);
    }

    @Test
    void plainLoraShardedMergeEqualsTheFloatMergerTensorForTensor() throws IOException {
        String model = Fixtures.tinyLlama().toString();
        Path adapter = tmp.resolve("lora");
        QaloraConfig cfg = QaloraConfig.lora(4, 8, 0.0);
        LlamaDims dims = LlamaDims.of(LlamaConfig.read(model));
        Map<String, float[]> w = new LinkedHashMap<>(QaloraAdapter.initialWeights(dims, cfg, 5));
        SplittableRandom rng = new SplittableRandom(9);
        w.replaceAll((k, v) -> {
            float[] c = v.clone();
            for (int i = 0; i < c.length; i++) {
                c[i] = (float) (rng.nextDouble() - 0.5) * 0.1f; // B non-zero, so the merge changes the weights
            }
            return c;
        });
        AdapterState.fromWeights(dims, cfg, w, 0).writePeft(adapter.toString(), model);
        Path single = tmp.resolve("single"), sharded = tmp.resolve("sharded");
        try (CpuBackend be = new CpuBackend(2)) {
            Merger.merge(LlamaModel.load(model, be), PeftAdapter.read(adapter.toString()), single.toString(), PATHS);
        }
        Merger.Report r = ShardedMerge.merge(model, adapter.toString(), sharded.toString(), 200_000, PATHS);
        assertTrue(Files.exists(sharded.resolve(Checkpoint.INDEX_FILE)));
        assertTrue(r.relativeLogitError() <= Merger.LOGIT_TOLERANCE);
        ModelFiles.assertSameTensors(single.toString(), sharded.toString());
    }

    @Test
    void anAdapterMissingATensorIsRefusedNamingTheFileAndTheTensor() throws IOException {
        Path adapter = tmp.resolve("adapter");
        PeftAdapter full = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
        Map<String, float[]> w = new LinkedHashMap<>(full.weights());
        String dropped = "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight";
        assertTrue(w.remove(dropped) != null);
        SafetensorsWriter sw = new SafetensorsWriter();
        var f = org.qalora.quant.safetensors.SafetensorsFile.open(
                Fixtures.tinyLlamaAdapter().resolve(PeftAdapter.WEIGHTS_FILE).toString());
        for (String name : f.names()) {
            if (!name.equals(dropped)) {
                sw.addBytes(name, f.info(name).dtype(), f.bytes(name), f.info(name).shape());
            }
        }
        f.close();
        Files.createDirectories(adapter);
        sw.write(adapter.resolve(PeftAdapter.WEIGHTS_FILE).toString());
        Files.copy(Fixtures.tinyLlamaAdapter().resolve(PeftAdapter.CONFIG_FILE), adapter.resolve(PeftAdapter.CONFIG_FILE));
        Path out = tmp.resolve("out");
        Exception e = assertThrows(RuntimeException.class, () -> ShardedMerge.merge(Fixtures.tinyLlamaGptq().toString(),
                adapter.toString(), out.toString(), SMALL_SHARDS, PATHS));
        assertTrue(e.getMessage().contains(PeftAdapter.WEIGHTS_FILE) && e.getMessage().contains("has no tensor " + dropped)
                && e.getMessage().contains("target_modules"), e.getMessage());
        assertFalse(Files.exists(out), "nothing left behind");
    }

    @Test
    void anAdapterWhoseConfigDoesNotMatchItsWeightsIsRefusedNamingTensorAndShapes() throws IOException {
        Path adapter = Files.createDirectories(tmp.resolve("adapter-r4"));
        Files.copy(Fixtures.tinyLlamaAdapter().resolve(PeftAdapter.WEIGHTS_FILE), adapter.resolve(PeftAdapter.WEIGHTS_FILE));
        Files.writeString(adapter.resolve(PeftAdapter.CONFIG_FILE), Files.readString(
                Fixtures.tinyLlamaAdapter().resolve(PeftAdapter.CONFIG_FILE)).replace("\"r\": 8", "\"r\": 4"));
        Exception e = assertThrows(RuntimeException.class, () -> ShardedMerge.merge(Fixtures.tinyLlamaGptq().toString(),
                adapter.toString(), tmp.resolve("out").toString(), SMALL_SHARDS, PATHS));
        assertTrue(e.getMessage().contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [8, 4]")
                && e.getMessage().contains("need [4, 4]") && e.getMessage().contains("r 4"), e.getMessage());
    }

    @Test
    void aQaloraAdapterOnAFloatBaseIsRefusedSayingWhatToPass() {
        Exception e = assertThrows(IllegalArgumentException.class, () -> ShardedMerge.merge(Fixtures.tinyLlama().toString(),
                Fixtures.tinyLlamaAdapter().toString(), tmp.resolve("out").toString(), SMALL_SHARDS, PATHS));
        assertTrue(e.getMessage().contains("not group-quantized") && e.getMessage().contains("quantized checkpoint"),
                e.getMessage());
    }
}
