package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.lang.ref.WeakReference;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;

/**
 * How many host copies of the adapter state an executor holds outside its trainer (docs/PERFORMANCE.md, "One copy of
 * the adapter state": at LLaMA-7B widths each copy of the weights and both moments is 32 MiB per layer). The round's
 * start state is kept as a local file, not on the heap: each task gets a fresh copy it may hand to its trainer, and
 * nothing is left reachable between tasks. A slot's update is streamed to its file, with no byte copy of the state
 * beside it.
 */
class ExecutorStateCopiesTest {
    @TempDir
    Path dir;

    private final Storage storage = new Storage(new Configuration());

    @AfterEach
    void release() { ExecutorCache.releaseAll(); }

    /** Two tensors of 1 Mi floats each: 24 MiB with the moments, well above what a test allocates otherwise. */
    private static AdapterTensors state(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        Map<String, AdapterTensors.Tensor> tensors = new LinkedHashMap<>();
        for (String k : List.of("layers.0.q.lora_A.weight", "layers.0.q.lora_B.weight")) {
            float[][] parts = new float[3][1 << 20];
            for (float[] a : parts) {
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) rng.nextDouble();
                }
            }
            tensors.put(k, new AdapterTensors.Tensor(new long[] {1024, 1024}, parts[0], parts[1], parts[2]));
        }
        return new AdapterTensors(tensors, 5);
    }

    private StateRef committed(AdapterTensors s, String id) {
        org.apache.hadoop.fs.Path file = storage.path(dir.resolve(id + ".safetensors").toString());
        String sha = AdapterStateFile.write(storage, file, "_tmp-" + id, s, Map.of());
        return new StateRef(new String[] {file.toString()}, new String[] {sha}, id);
    }

    @Test
    void theStartStateIsNotKeptOnTheHeapBetweenTasks() {
        AdapterTensors written = state(1);
        StateRef ref = committed(written, "round-3");
        AdapterTensors first = ref.load(storage);
        AdapterTensors second = ref.load(storage);
        assertTrue(first.bitwiseEquals(written) && second.bitwiseEquals(written), "the committed state, bit for bit");
        List<WeakReference<float[]>> arrays = new ArrayList<>();
        for (String k : first.keys()) {
            AdapterTensors.Tensor a = first.tensor(k), b = second.tensor(k);
            assertNotSame(a.weights(), b.weights(), "each task gets its own copy to hand to its trainer");
            assertNotSame(a.adamM(), b.adamM());
            assertNotSame(a.adamV(), b.adamV());
            arrays.add(new WeakReference<>(a.weights()));
            arrays.add(new WeakReference<>(a.adamM()));
            arrays.add(new WeakReference<>(a.adamV()));
        }
        // A trainer trains in its copy: what it writes must not reach the next task's start.
        first.tensor(first.keys().get(0)).weights()[0] = Float.NaN;
        assertTrue(ref.load(storage).bitwiseEquals(written), "a retried slot restarts from the exact start state");
        first = null;
        second = null;
        for (int i = 0; i < 10 && arrays.stream().anyMatch(r -> r.get() != null); i++) {
            System.gc(); // a request: asked again until it has run
        }
        for (WeakReference<float[]> r : arrays) {
            assertNull(r.get(), "a start state array is still reachable once its task let it go");
        }
    }

    @Test
    void theLocalCopyIsReplacedByTheNextRoundsAndRemovedOnRelease() throws Exception {
        AdapterTensors r3 = state(3), r4 = state(4);
        StateRef ref3 = committed(r3, "round-3"), ref4 = committed(r4, "round-4");
        assertTrue(ref3.load(storage).bitwiseEquals(r3));
        Path local = LocalStateCopy.localDir();
        assertEquals(1, localFiles(local), "round 3's copy");
        assertTrue(ref4.load(storage).bitwiseEquals(r4));
        assertEquals(1, localFiles(local), "round 4's copy replaced round 3's");
        ExecutorCache.releaseAll();
        assertEquals(0, localFiles(local));
    }

    private static long localFiles(Path local) throws Exception {
        try (var files = Files.list(local)) {
            return files.filter(f -> f.getFileName().toString().startsWith("start-")).count();
        }
    }

    @Test
    void aStartStateChangedInTheCheckpointIsRefused() throws Exception {
        StateRef ref = committed(state(5), "round-5");
        Path file = Path.of(new org.apache.hadoop.fs.Path(ref.files()[0]).toUri());
        byte[] bytes = Files.readAllBytes(file);
        bytes[bytes.length - 1] ^= 1;
        Files.write(file, bytes);
        Files.deleteIfExists(file.resolveSibling("." + file.getFileName() + ".crc")); // Hadoop's local checksum
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ref.load(storage));
        assertTrue(e.getMessage().contains("but its round manifest says " + ref.sha256s()[0]), e.getMessage());
    }

    /**
     * Writing a slot's update allocates a small fraction of the state (a 1 MiB buffer), not a byte copy of all of it
     * (measured with the JVM's per-thread allocation counter).
     */
    @Test
    void aSlotsUpdateIsWrittenWithoutACopyOfTheState() {
        AdapterTensors update = state(6);
        long stateBytes = 2L * 3 * (1 << 20) * Float.BYTES;
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        org.apache.hadoop.fs.Path target = storage.path(dir.resolve("slot-00000.safetensors").toString());
        AdapterStateFile.writeUpdate(storage, storage.path(dir.resolve("warm-up.safetensors").toString()), "_tmp-w",
                state(7), Map.of("slot", "1")); // loads the classes and the file system once
        long before = threads.getCurrentThreadAllocatedBytes();
        AdapterStateFile.writeUpdate(storage, target, "_tmp-slot-0", update, Map.of("slot", "0"));
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertTrue(allocated < stateBytes / 4, "writing a " + stateBytes + "-byte update allocated " + allocated
                + " bytes");
        assertTrue(AdapterStateFile.read(storage, target).state().bitwiseEquals(update));
    }
}
