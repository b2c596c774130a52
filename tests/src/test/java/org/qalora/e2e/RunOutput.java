package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.output.ModelPublisher;

/**
 * The output directory of a {@code qalora train} run as the test JVM sees it: what a reader may observe between
 * kills ({@link #latestCommittedRound}, {@link #checkNothingHalfWrittenIsVisible}) and the file-by-file comparison
 * of a finished run with the uninterrupted reference ({@link #assertSameAs}).
 */
final class RunOutput {
    /** Wall-clock measurements in the round metrics: the only bytes two runs of the same command may differ in. */
    static final List<String> TIMINGS = List.of("tokensPerSecond", "roundSeconds", "slowestSlotTrainMillis",
            "averagingMillis", "commitMillis");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final FileSystem fs;
    private final Path root;

    RunOutput(FileSystem fs, String root) {
        this.fs = fs;
        this.root = fs.makeQualified(new Path(root));
    }

    Path root() { return root; }

    Path checkpoints() { return new Path(root, "checkpoints"); }

    private Path path(String relative) {
        return relative.isEmpty() ? root : new Path(root, relative);
    }

    boolean exists(String relative) {
        try {
            return fs.exists(path(relative));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Names directly under {@code relative} (empty when it does not exist). */
    List<String> list(String relative) {
        try {
            Path dir = path(relative);
            if (!fs.exists(dir)) {
                return List.of();
            }
            List<String> names = new ArrayList<>();
            for (FileStatus st : fs.listStatus(dir)) {
                names.add(st.getPath().getName());
            }
            return names;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** True when an entry directly under {@code relative} has a name starting with {@code prefix}. */
    boolean hasEntry(String relative, String prefix) {
        return list(relative).stream().anyMatch(n -> n.startsWith(prefix));
    }

    private Storage storage() {
        return new Storage(new Configuration(fs.getConf()));
    }

    /** The round a resumed driver must start from: the highest one whose manifest and checksums are valid, or -1. */
    int latestCommittedRound() {
        return new CheckpointStore(storage(), checkpoints(), s -> {}).latestCommitted()
                .map(CheckpointStore.Committed::round).orElse(-1);
    }

    /** The rounds metrics.jsonl has a line for. */
    List<Integer> metricsRounds() {
        String file = "checkpoints/" + CheckpointStore.METRICS;
        return exists(file) ? withoutTimings(read(file)).stream().map(j -> j.path("round").asInt()).toList() : List.of();
    }

    /** The version LATEST names, if LATEST exists. */
    Optional<String> latest() {
        return exists(ModelPublisher.LATEST)
                ? Optional.of(new String(read(ModelPublisher.LATEST), StandardCharsets.UTF_8).trim())
                : Optional.empty();
    }

    /**
     * What a reader of the output may see at any moment, even right after a SIGKILL: LATEST, if present, names a
     * version directory whose files all match its manifest; every version directory ({@code v-*}) is complete
     * (half-written models only ever live under {@code _tmp-} names).
     */
    void checkNothingHalfWrittenIsVisible(String when) {
        ModelPublisher publisher = new ModelPublisher(storage());
        for (String name : list("")) {
            if (name.startsWith("v-")) {
                Path dir = new Path(root, name);
                assertTrue(exists(name + "/" + ModelPublisher.MANIFEST), when + ": " + dir + " has no manifest");
                assertEquals(Optional.empty(), publisher.verify(dir), when + ": " + dir + " is incomplete");
            }
        }
        latest().ifPresent(v -> {
            assertTrue(v.startsWith("v-") && exists(v), when + ": LATEST names " + v + ", which does not exist");
            assertEquals(Optional.empty(), publisher.verify(new Path(root, v)), when + ": LATEST names an incomplete " + v);
        });
    }

    /** Every file under the root, by path relative to it. */
    TreeMap<String, byte[]> files() {
        TreeMap<String, byte[]> out = new TreeMap<>();
        try {
            RemoteIterator<LocatedFileStatus> it = fs.listFiles(root, true);
            String prefix = root.toUri().getPath() + "/";
            while (it.hasNext()) {
                Path p = it.next().getPath();
                out.put(p.toUri().getPath().substring(prefix.length()), read(p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    private byte[] read(String relative) {
        return read(path(relative));
    }

    private byte[] read(Path p) {
        try (InputStream in = fs.open(p)) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * This run's output equals {@code reference}'s: the same set of files (so no temporary, torn or extra version is
     * left behind), every file byte for byte (the published model, its tokenizer and config, the adapter, the
     * manifest, LATEST, run.json, the prepared data, every committed adapter state), except the round metrics
     * (metrics.jsonl and the rounds' manifests), which must be equal in every field but the wall-clock
     * {@link #TIMINGS}.
     */
    void assertSameAs(RunOutput reference) {
        TreeMap<String, byte[]> expected = reference.files();
        TreeMap<String, byte[]> actual = files();
        if (!expected.keySet().equals(actual.keySet())) {
            TreeSet<String> missing = new TreeSet<>(expected.keySet());
            missing.removeAll(actual.keySet());
            TreeSet<String> extra = new TreeSet<>(actual.keySet());
            extra.removeAll(expected.keySet());
            throw new AssertionError(root + " holds other files than the reference " + reference.root + ": missing "
                    + missing + ", extra " + extra);
        }
        assertTrue(expected.keySet().stream().anyMatch(f -> f.matches("v-[^/]+/model\\.safetensors")),
                "the reference published a model: " + expected.keySet());
        for (Map.Entry<String, byte[]> e : expected.entrySet()) {
            String name = e.getKey();
            byte[] got = actual.get(name);
            if (name.equals("checkpoints/" + CheckpointStore.METRICS)) {
                List<JsonNode> want = withoutTimings(e.getValue());
                List<JsonNode> have = withoutTimings(got);
                // The rounds first: a lost line reads better as "rounds [3, 4]" than as two pages of JSON.
                assertEquals(reference.metricsRounds(), metricsRounds(), name + ": the rounds it has a line for");
                assertEquals(want, have, name + " (timings aside)");
            } else if (name.matches("checkpoints/round-\\d+/" + CheckpointStore.MANIFEST)) {
                assertEquals(withoutTimings(e.getValue()), withoutTimings(got), name + " (timings aside)");
            } else {
                assertArrayEquals(e.getValue(), got, name + " differs from the reference's, byte for byte");
            }
        }
    }

    /** One JSON document per line (metrics.jsonl) or one document (a manifest), with the timing fields removed. */
    static List<JsonNode> withoutTimings(byte[] bytes) {
        String text = new String(bytes, StandardCharsets.UTF_8);
        List<JsonNode> docs = new ArrayList<>();
        try {
            if (text.startsWith("{\n")) { // a pretty-printed manifest: one document
                docs.add(strip(JSON.readTree(text)));
            } else {
                for (String line : text.split("\n")) {
                    if (!line.isBlank()) {
                        docs.add(strip(JSON.readTree(line)));
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return docs;
    }

    private static JsonNode strip(JsonNode doc) {
        // A round manifest holds the metrics under "metrics" (null for round 0); a metrics.jsonl line is them.
        if ((doc.has("metrics") ? doc.get("metrics") : doc) instanceof ObjectNode metrics) {
            TIMINGS.forEach(metrics::remove);
        }
        return doc;
    }
}
