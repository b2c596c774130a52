package org.qalora.driver.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.rounds.RoundMetrics;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.driver.testing.ToyTrainerFactory;

class CheckpointStoreTest {
    @TempDir
    Path dir;

    private static RoundMetrics metrics(int round) {
        return new RoundMetrics(round, round * 2L, 2, 1.0 / round, new double[] {1, 2}, 10, 5, 2, 1, 1, 1, 0.1, 0.01,
                0.005, 2, new String[] {"0/cpu", "1/cpu"}, null, 0, 0);
    }

    @Test
    void theLatestValidRoundWinsAndCorruptOrTornRoundsAreSkipped() throws Exception {
        Storage storage = new Storage(new Configuration());
        List<String> log = new ArrayList<>();
        CheckpointStore store = new CheckpointStore(storage, storage.path(dir.toString()), log::add);
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(1);
        store.commit(0, s, "plan", "cfg", null);
        store.commit(1, new AdapterTensors(keysOf(s), 2), "plan", "cfg", metrics(1));
        store.commit(2, new AdapterTensors(keysOf(s), 4), "plan", "cfg", metrics(2));
        assertEquals(2, store.latestCommitted().orElseThrow().round());

        // Flip a byte of round 2's state: its checksum no longer matches, so round 1 is the latest valid one.
        Path state = dir.resolve("round-00002/" + CheckpointStore.STATE_FILE);
        byte[] bytes = Files.readAllBytes(state);
        bytes[bytes.length - 1] ^= 1;
        Files.write(state, bytes);
        CheckpointStore.Committed latest = store.latestCommitted().orElseThrow();
        assertEquals(1, latest.round());
        assertEquals(2, store.loadState(latest).step());
        assertTrue(log.stream().anyMatch(l -> l.contains("round-00002") && l.contains("does not match")), log.toString());

        // A later torn directory (no manifest) is skipped too.
        Files.createDirectories(dir.resolve("round-00007"));
        assertEquals(1, store.latestCommitted().orElseThrow().round());
    }

    @Test
    void metricsLinesAreNotDuplicatedWhenARoundIsRedone() throws Exception {
        Storage storage = new Storage(new Configuration());
        CheckpointStore store = new CheckpointStore(storage, storage.path(dir.toString()), s -> {});
        store.appendMetrics(metrics(1));
        store.appendMetrics(metrics(2));
        store.appendMetrics(metrics(3));
        store.appendMetrics(metrics(2)); // a resumed run redoes round 2: rounds >= 2 are replaced
        List<String> lines = Files.readAllLines(dir.resolve(CheckpointStore.METRICS));
        assertEquals(2, lines.size());
        assertTrue(lines.get(0).startsWith("{\"round\":1,") && lines.get(1).startsWith("{\"round\":2,"), lines.toString());
        assertEquals(java.util.Set.of(1, 2), store.metricsRounds());
    }

    /**
     * A driver killed right after renaming round 4 into place (before its metrics line, before pruning), with a
     * commit directory and a metrics rewrite half-done: the restarted driver's tidy-up leaves what an uninterrupted
     * run would have, metrics.jsonl byte for byte. (DriverKillTest kills a real driver there.)
     */
    @Test
    void aRestartPrunesAndRemovesLeftoversAndLeavesTheSkippedMetricsLineToTheRoundsLoop() throws Exception {
        Storage storage = new Storage(new Configuration());
        List<String> log = new ArrayList<>();
        CheckpointStore store = new CheckpointStore(storage, storage.path(dir.toString()), log::add);
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(1);
        store.commit(0, s, "plan", "cfg", null);
        for (int r = 1; r <= 4; r++) {
            store.commit(r, new AdapterTensors(keysOf(s), 2L * r), "plan", "cfg", metrics(r));
            if (r < 4) {
                store.appendMetrics(metrics(r)); // round 4 was committed, then the driver was killed before its line
            }
        }
        byte[] before = Files.readAllBytes(dir.resolve(CheckpointStore.METRICS));
        Files.createDirectories(dir.resolve("_tmp-round-00005-killed"));
        Files.writeString(dir.resolve("_tmp-metrics.jsonl-killed"), "{\"round\":5");

        CheckpointStore.Committed latest = store.latestCommitted().orElseThrow();
        store.tidyAfterRestart(latest, 2);
        try (var names = Files.list(dir)) {
            assertEquals(List.of("metrics.jsonl", "round-00003", "round-00004"),
                    names.map(p -> p.getFileName().toString()).sorted().toList(), log.toString());
        }
        // Round 4's line is the rounds loop's to write on resume (after its held-out loss): metricsRounds says so.
        assertEquals(java.util.Set.of(1, 2, 3), store.metricsRounds());
        assertEquals(new String(before, java.nio.charset.StandardCharsets.UTF_8),
                Files.readString(dir.resolve(CheckpointStore.METRICS)));
        // Nothing left to do: a second restart changes nothing and says nothing.
        log.clear();
        store.tidyAfterRestart(latest, 2);
        assertEquals(List.of(), log);
    }

    /**
     * A round committed as part files (what the executors' averaging writes): it reads back as one state in key
     * order, its identity is fixed by its parts, a corrupt part makes the round invalid, and a commit whose part is
     * missing or of another size is refused naming it.
     */
    @Test
    void aStateCommittedAsPartsReadsBackWholeAndAnyBadPartInvalidatesTheRound() throws Exception {
        Storage storage = new Storage(new Configuration());
        List<String> log = new ArrayList<>();
        CheckpointStore store = new CheckpointStore(storage, storage.path(dir.resolve("parts").toString()), log::add);
        AdapterTensors s = new ToyTrainerFactory(1, "", 0.1f).initialState(1);
        store.commit(0, s, "plan", "cfg", null);
        List<String> keys = s.keys();
        java.util.Map<String, RoundManifest.FileEntry> files = new java.util.LinkedHashMap<>();
        org.apache.hadoop.fs.Path tmp = store.beginCommit(1);
        int half = keys.size() / 2;
        for (int p = 0; p < 2; p++) {
            java.util.Map<String, AdapterTensors.Tensor> part = new java.util.LinkedHashMap<>();
            for (String k : p == 0 ? keys.subList(0, half) : keys.subList(half, keys.size())) {
                part.put(k, s.tensor(k));
            }
            String name = CheckpointStore.partFileName(p, 2);
            org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(tmp, name);
            String sha = AdapterStateFile.write(storage, file, "_tmp-" + p, new AdapterTensors(part, 6),
                    java.util.Map.of("round", "1"));
            files.put(name, new RoundManifest.FileEntry(storage.length(file), sha));
        }
        CheckpointStore.Committed one = store.commitPrepared(1, tmp, files, 6, "plan", "cfg", metrics(1));
        assertEquals(List.of("adapter_state-00001-of-00002.safetensors", "adapter_state-00002-of-00002.safetensors"),
                one.stateFiles().stream().map(org.apache.hadoop.fs.Path::getName).toList());
        CheckpointStore.Committed read = store.latestCommitted().orElseThrow();
        assertEquals(1, read.round());
        assertEquals(one.stateId(), read.stateId());
        assertTrue(!read.stateId().equals(files.values().iterator().next().sha256()), "parts: an id over all parts");
        AdapterTensors back = store.loadState(read);
        assertEquals(keys, back.keys());
        assertTrue(new AdapterTensors(keysOf(s), 6).bitwiseEquals(back), "the parts read back as the whole state");

        // A part missing, or of another size than its writer reported, is refused before anything is committed.
        org.apache.hadoop.fs.Path tmp2 = store.beginCommit(2);
        IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> store.commitPrepared(2, tmp2, files, 6, "plan", "cfg", metrics(2)));
        assertTrue(e.getMessage().contains(CheckpointStore.partFileName(0, 2)) && e.getMessage().contains("is missing"),
                e.getMessage());

        // Flip a byte of the second part: round 1 is no longer valid, round 0 is the latest.
        Path part2 = dir.resolve("parts/round-00001/" + CheckpointStore.partFileName(1, 2));
        byte[] bytes = Files.readAllBytes(part2);
        bytes[bytes.length - 1] ^= 1;
        Files.write(part2, bytes);
        assertEquals(0, store.latestCommitted().orElseThrow().round());
        assertTrue(log.stream().anyMatch(l -> l.contains(CheckpointStore.partFileName(1, 2)) && l.contains("does not match")),
                log.toString());
    }

    private static java.util.Map<String, AdapterTensors.Tensor> keysOf(AdapterTensors s) {
        java.util.Map<String, AdapterTensors.Tensor> m = new java.util.LinkedHashMap<>();
        for (String k : s.keys()) {
            m.put(k, s.tensor(k));
        }
        return m;
    }
}
