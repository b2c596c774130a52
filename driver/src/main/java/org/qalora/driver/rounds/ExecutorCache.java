package org.qalora.driver.rounds;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterTensors;

/**
 * Per-executor-JVM caches: the opened trainers (each holds a loaded base model) keyed by model identity and
 * device, so the base model is loaded once per executor and device rather than once per task; and the latest
 * round start state, keyed by its identity (a committed round's content never changes, so the identity names it
 * even across runs that reuse a path), kept as a local file ({@link LocalStateCopy}), not on the heap.
 */
public final class ExecutorCache {
    private static final Map<String, SlotTrainer> TRAINERS = new ConcurrentHashMap<>();
    private static final Map<String, Integer> OPENS = new ConcurrentHashMap<>();
    private static LocalStateCopy state;

    private ExecutorCache() {}

    /** The trainer for {@code factory} on {@code device}, opened on first use in this JVM. */
    public static SlotTrainer trainer(SlotTrainerFactory factory, String device) {
        String key = factory.identity() + "@" + device;
        return TRAINERS.computeIfAbsent(key, k -> {
            OPENS.merge(k, 1, Integer::sum);
            return factory.open(device);
        });
    }

    /**
     * Lets go of this JVM's opened trainers and cached start state, for work that needs the heap once training is
     * over: the merge check loads a base and a merged model of its own, and at LLaMA-7B widths an executor that also
     * kept its trainer's base (1.3 GB of float embeddings and int4 layers for 2 layers) ran out of a 3 GB heap
     * (measured by SevenBTrainHeapTest). A task still running holds its own reference; a later task reopens.
     */
    public static synchronized void releaseAll() {
        TRAINERS.clear();
        dropState();
    }

    private static void dropState() {
        if (state != null) {
            state.delete();
            state = null;
        }
    }

    /** How many times this JVM opened (loaded) the trainer of {@code identity} on {@code device}: tests check 1. */
    public static int opens(String identity, String device) {
        return OPENS.getOrDefault(identity + "@" + device, 0);
    }

    /**
     * The round start state stored as {@code files} (one file, or parts in key order), whose SHA-256s must be
     * {@code sha256s}, identified by {@code stateId}: copied (and checked) once per round and JVM into the executor's
     * local directory, and read from there into a fresh copy on each call, which the caller owns: a trainer may take
     * its arrays over and train in them ({@link SlotTrainer#train}). Reads are serialised, and a round's files are
     * replaced only under the same lock, so no reader sees them change.
     */
    public static synchronized AdapterTensors startState(Storage storage, List<Path> files, List<String> sha256s,
                                                         String stateId) {
        if (state == null || !state.holds(stateId)) {
            dropState(); // the previous round's files: no task starts from them again
            state = LocalStateCopy.fetch(storage, files, sha256s, stateId, LocalStateCopy.localDir());
        }
        return state.read(storage);
    }
}
