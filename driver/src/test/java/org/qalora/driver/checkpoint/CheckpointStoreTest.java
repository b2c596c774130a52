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

    private static java.util.Map<String, AdapterTensors.Tensor> keysOf(AdapterTensors s) {
        java.util.Map<String, AdapterTensors.Tensor> m = new java.util.LinkedHashMap<>();
        for (String k : s.keys()) {
            m.put(k, s.tensor(k));
        }
        return m;
    }
}
