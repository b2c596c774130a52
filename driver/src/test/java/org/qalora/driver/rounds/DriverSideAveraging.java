package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.quant.kernels.KernelPool;

/**
 * The round's averaging as the driver did it before it moved to the executors (2026-12-06): every update file
 * read whole once to check it, then again to average it, all keys in this JVM. Kept as the reference the executor
 * path must match bit for bit, and as the baseline {@link RoundTrafficBench} times next to it.
 */
final class DriverSideAveraging {
    private DriverSideAveraging() {}

    /** Reads each slot's update whole and checks its digests against {@code expected}[slot]; in parallel. */
    static void verify(Storage storage, Path updates, List<Integer> slots, List<SegmentDigests> expected) {
        String[] roots = new String[slots.size()];
        KernelPool.shared().run(roots.length, t -> roots[t] = SegmentDigests.of(storage,
                new Path(updates, CheckpointStore.updateFileName(slots.get(t)))).root());
        for (int t = 0; t < roots.length; t++) {
            if (!roots[t].equals(expected.get(slots.get(t)).root())) {
                throw new IllegalStateException("slot " + slots.get(t) + "'s update changed on disk");
            }
        }
    }

    /**
     * Averages {@code slots}' update files of round {@code round} on this JVM, laid out as {@code start}: key by key
     * in parallel, each key in slot order (read tensor by tensor, never whole).
     */
    static UpdateAverager.Averaged average(Storage storage, CheckpointStore store, int round,
                                           CheckpointStore.Committed start, List<Integer> slots) {
        UpdateAverager averager = new UpdateAverager(AdapterStateFile.layout(storage, start.stateFiles()),
                KernelPool.shared());
        List<AdapterStateFile.Reader> open = new ArrayList<>();
        try {
            long step = -1;
            for (int slot : slots) {
                Path file = new Path(store.updatesDir(round), CheckpointStore.updateFileName(slot));
                AdapterStateFile.Reader update = AdapterStateFile.open(storage, file);
                open.add(update);
                step = update.step();
                averager.add(slot, update, Long.parseLong(update.metadata().get("target_tokens")));
            }
            return averager.finish(step);
        } finally {
            open.forEach(AdapterStateFile.Reader::close);
        }
    }
}
