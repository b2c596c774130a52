package org.qalora.driver.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.model.Projection;

/**
 * The final state of a run, committed as parts, published without loading it: the one file {@link StateParts} writes
 * is the file {@link AdapterStateFile#write} writes for the whole state, byte for byte, and so is the PEFT adapter
 * streamed from the parts; and in a JVM whose heap is smaller than the state, both still work.
 */
class StatePartsTest {
    @TempDir
    Path dir;

    private final Storage storage = new Storage(new Configuration());

    private org.apache.hadoop.fs.Path file(String name) {
        return storage.path(dir.resolve(name).toString());
    }

    /** Random weights and moments under PEFT keys (A [r, 4], B [rows, r] for each of layer 0's projections). */
    static AdapterTensors randomState(int rank, int rows, long seed, long step) {
        SplittableRandom rng = new SplittableRandom(seed);
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        for (Projection p : Projection.values()) {
            for (long[] shape : new long[][] {{rank, 4}, {rows, rank}}) {
                int n = (int) (shape[0] * shape[1]);
                float[][] parts = new float[3][n];
                for (float[] a : parts) {
                    for (int i = 0; i < n; i++) {
                        a[i] = (float) (rng.nextDouble() - 0.5);
                    }
                }
                tensors.put(shape[0] == rank ? PeftKeys.a(0, p) : PeftKeys.b(0, p),
                        new AdapterTensors.Tensor(shape, parts[0], parts[1], parts[2]));
            }
        }
        return new AdapterTensors(tensors, step);
    }

    /** Writes {@code state} as {@code parts} part files (contiguous key ranges, as the averaging tasks do). */
    static List<org.apache.hadoop.fs.Path> writeParts(Storage storage, Path dir, AdapterTensors state, int parts) {
        List<String> keys = state.keys();
        List<org.apache.hadoop.fs.Path> files = new ArrayList<>();
        for (int p = 0; p < parts; p++) {
            Map<String, AdapterTensors.Tensor> range = new LinkedHashMap<>();
            for (String k : keys.subList(p * keys.size() / parts, (p + 1) * keys.size() / parts)) {
                range.put(k, state.tensor(k));
            }
            org.apache.hadoop.fs.Path f = storage.path(dir.resolve(CheckpointStore.partFileName(p, parts)).toString());
            AdapterStateFile.write(storage, f, "_tmp-" + p, new AdapterTensors(range, state.step()),
                    Map.of("round", "4", "part", Integer.toString(p)));
            files.add(f);
        }
        return files;
    }

    @Test
    void theOneFileOfThePartsIsTheFileOfTheWholeStateByteForByte() throws IOException {
        AdapterTensors state = randomState(8, 40, 1, 11);
        String wholeSha = AdapterStateFile.write(storage, file("whole.safetensors"), "_tmp-w", state,
                Map.of("round", "4"));
        List<org.apache.hadoop.fs.Path> parts = writeParts(storage, dir, state, 3);
        try (StateParts opened = StateParts.open(storage, parts)) {
            assertEquals(11, opened.step());
            assertEquals(state.keys(), new ArrayList<>(opened.layout().keySet()), "the trainer's key order");
            assertEquals(wholeSha, opened.sha256OfOneFile(Map.of("round", "4")));
            String sha = opened.writeOneFile(storage, file("one.safetensors"), "_tmp-one", Map.of("round", "4"));
            assertEquals(wholeSha, sha);
        }
        assertArrayEquals(Files.readAllBytes(dir.resolve("whole.safetensors")),
                Files.readAllBytes(dir.resolve("one.safetensors")));
        assertTrue(AdapterStateFile.read(storage, file("one.safetensors")).state().bitwiseEquals(state));

        // The PEFT adapter streamed from the parts is the one written from the weights in memory.
        QaloraConfig cfg = QaloraConfig.allProjections(8, 16.0, 32, Pooling.MEAN, 0.0);
        Map<String, float[]> weights = new LinkedHashMap<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (String k : state.keys()) {
            weights.put(k, state.tensor(k).weights());
            shapes.put(k, state.tensor(k).shape());
        }
        HadoopPaths paths = storage.paths();
        PeftAdapter.write(dir.resolve("peft-memory").toString(), cfg, weights, shapes, "base", paths);
        try (StateParts opened = StateParts.open(storage, parts)) {
            PeftAdapter.write(dir.resolve("peft-streamed").toString(), cfg, opened.layout(),
                    (t, out) -> opened.copyTo(t.name(), 0, out), "base", paths);
        }
        for (String f : List.of(PeftAdapter.WEIGHTS_FILE, PeftAdapter.CONFIG_FILE)) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("peft-memory").resolve(f)),
                    Files.readAllBytes(dir.resolve("peft-streamed").resolve(f)), f);
        }
    }

    @Test
    void partsOfDifferentStatesAreRefusedNamingTheFile() {
        AdapterTensors state = randomState(4, 16, 2, 5);
        List<org.apache.hadoop.fs.Path> parts = writeParts(storage, dir, state, 2);
        org.apache.hadoop.fs.Path later = file("later.safetensors");
        AdapterStateFile.write(storage, later, "_tmp-l", randomState(4, 16, 3, 6), Map.of());
        IllegalStateException step = assertThrows(IllegalStateException.class,
                () -> StateParts.open(storage, List.of(parts.get(0), later)));
        assertTrue(step.getMessage().contains(later + " is at optimizer step 6"), step.getMessage());
        IllegalStateException twice = assertThrows(IllegalStateException.class,
                () -> StateParts.open(storage, List.of(parts.get(0), parts.get(0))));
        assertTrue(twice.getMessage().contains("repeats key"), twice.getMessage());
    }

    /**
     * A 116 MB state (weights and both moments) in 3 parts, written as one file and as a PEFT adapter by a JVM capped
     * at 48 MB of heap: reading the state whole ({@link AdapterStateFile#read}, as the driver did before it streamed
     * the final state) fails there with an OutOfMemoryError, so the cap tells the two apart.
     */
    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aStateLargerThanTheHeapIsWrittenAsOneFileAndAsAPeftAdapter() throws Exception {
        AdapterTensors chunk = null;
        List<org.apache.hadoop.fs.Path> parts = new ArrayList<>();
        int count = 3;
        for (int p = 0; p < count; p++) {
            // One part at a time in this JVM: 7 projections x (A [64, 4], B [7168, 64]) x 3 = 39 MB each.
            chunk = randomState(64, 7168, 10 + p, 9);
            Map<String, AdapterTensors.Tensor> renamed = new LinkedHashMap<>();
            for (String k : chunk.keys()) {
                renamed.put(k.replace("layers.0.", "layers." + p + "."), chunk.tensor(k));
            }
            org.apache.hadoop.fs.Path f = file(CheckpointStore.partFileName(p, count));
            AdapterStateFile.write(storage, f, "_tmp-" + p, new AdapterTensors(renamed, 9), Map.of("round", "2"));
            parts.add(f);
        }
        chunk = null;
        long stateBytes = 0;
        for (org.apache.hadoop.fs.Path f : parts) {
            stateBytes += storage.length(f);
        }
        assertTrue(stateBytes > 2 * 48L << 20, "the state (" + stateBytes + " bytes) is twice the child's heap cap");
        String streamed = probe("48m", "stream", parts);
        assertTrue(streamed.contains("ok sha256="), streamed);
        try (StateParts opened = StateParts.open(storage, parts)) {
            assertTrue(streamed.contains("sha256=" + opened.sha256OfOneFile(Map.of("round", "2"))), streamed);
        }
        String whole = probe("48m", "load", parts);
        assertTrue(whole.contains("OutOfMemoryError"), "loading the state whole must not fit the cap: " + whole);
    }

    /** Runs {@link StatePartsHeapProbe} in a JVM capped at {@code cap}; returns its output. */
    private String probe(String cap, String mode, List<org.apache.hadoop.fs.Path> parts)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx" + cap, "-XX:+UseSerialGC"));
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.startsWith("--add-") || arg.startsWith("--enable-native-access")) {
                cmd.add(arg);
            }
        }
        cmd.addAll(List.of("-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                StatePartsHeapProbe.class.getName(), mode, dir.resolve("out-" + mode).toString()));
        parts.forEach(p -> cmd.add(p.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        return output;
    }
}
