package org.qalora.driver.rounds;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.quant.kernels.KernelPool;

/**
 * The body of a round's averaging task (one partition = one key range): reads its keys' tensors, and only those
 * byte ranges, from every slot's update file, checks each tensor's bytes (and each file's header) against the
 * CRC32C the slot task computed while writing it ({@link SegmentDigests} says why CRC32C suffices there), sums them in slot order in float64 exactly as the driver-side
 * {@link UpdateAverager} does, and writes its part of the round's state into the round's commit directory
 * (attempt-unique temporary name, then rename; an earlier attempt's part, bit-identical, is kept). The update
 * bytes are read once, checked while averaging, and never pass through the driver. A failed check writes nothing
 * and returns a refusal naming the slot, file and tensor, so the driver re-runs that slot.
 */
public final class AveragingTask implements FlatMapFunction<Iterator<Integer>, AveragedPart> {
    private static final long serialVersionUID = 1L;

    private final ShippedHadoopConf hadoopConf;
    private final int round;
    private final String updatesDir;
    private final SegmentDigests[] digests; // [slot], slots 0..N-1 in order
    private final LinkedHashMap<String, long[]> layout;
    private final List<List<String>> ranges;
    private final String commitDir;
    private final FaultPlan faults;

    public AveragingTask(ShippedHadoopConf hadoopConf, int round, String updatesDir, SegmentDigests[] digests,
                         Map<String, long[]> layout, List<List<String>> ranges, String commitDir, FaultPlan faults) {
        this.hadoopConf = hadoopConf;
        this.round = round;
        this.updatesDir = updatesDir;
        this.digests = digests.clone();
        this.layout = new LinkedHashMap<>(layout);
        this.ranges = ranges.stream().map(r -> (List<String>) new ArrayList<>(r)).toList();
        this.commitDir = commitDir;
        this.faults = faults;
    }

    /** An update whose bytes do not match the digest its slot task reported. */
    static final class RefusedUpdate extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final int slot;

        RefusedUpdate(int slot, String message) {
            super(message);
            this.slot = slot;
        }
    }

    @Override
    public Iterator<AveragedPart> call(Iterator<Integer> parts) {
        List<AveragedPart> out = new ArrayList<>(1);
        TaskContext ctx = TaskContext.get();
        Storage storage = new Storage(hadoopConf.get());
        while (parts.hasNext()) {
            out.add(average(storage, ctx, parts.next()));
        }
        return out.iterator();
    }

    private AveragedPart average(Storage storage, TaskContext ctx, int part) {
        long t0 = System.nanoTime();
        String executor = SparkEnv.get() == null ? "local" : SparkEnv.get().executorId();
        UpdateAverager averager = new UpdateAverager(layout, KernelPool.shared());
        List<AdapterStateFile.Reader> open = new ArrayList<>();
        try {
            long step = -1;
            for (int slot = 0; slot < digests.length; slot++) {
                Path file = new Path(updatesDir, CheckpointStore.updateFileName(slot));
                String header = SegmentDigests.headerOf(storage, file);
                if (!header.equals(digests[slot].header())) {
                    throw new RefusedUpdate(slot, "slot " + slot + "'s update " + file + " has a header with CRC32C "
                            + header + ", which does not match the CRC32C its task reported (" + digests[slot].header()
                            + ")");
                }
                AdapterStateFile.Reader update = AdapterStateFile.open(storage, file);
                open.add(update);
                long tokens = Long.parseLong(update.metadata().get("target_tokens"));
                if (step >= 0 && update.step() != step) {
                    throw new IllegalStateException(file + " ends at optimizer step " + update.step()
                            + " but slot 0 ends at " + step + ": slots must run the same number of steps");
                }
                step = update.step();
                Map<String, long[]> shapes = new LinkedHashMap<>();
                for (String k : update.keys()) {
                    shapes.put(k, update.shape(k));
                }
                averager.add(slot, new VerifiedSource(slot, update, digests[slot]), tokens, shapes);
            }
            UpdateAverager.KeysAveraged averaged = averager.averageKeys(ranges.get(part));
            int attempt = ctx == null ? 0 : ctx.attemptNumber();
            faults.maybeFireInAveraging(round, part, attempt, FaultPlan.MergePhase.BEFORE_RENAME);
            String name = CheckpointStore.partFileName(part, ranges.size());
            Path target = new Path(commitDir, name);
            String tempName = String.format("_tmp-part-%05d-stage%d-attempt%d-task%d", part,
                    ctx == null ? 0 : ctx.stageAttemptNumber(), attempt, ctx == null ? 0 : ctx.taskAttemptId());
            String sha = AdapterStateFile.write(storage, target, tempName, new AdapterTensors(averaged.tensors(), step),
                    Map.of("round", Integer.toString(round), "part", Integer.toString(part)));
            faults.maybeFireInAveraging(round, part, attempt, FaultPlan.MergePhase.AFTER_RENAME);
            return new AveragedPart(part, name, storage.length(target), sha, step, averager.totalTokens(),
                    averaged.stats(), -1, null, executor, (System.nanoTime() - t0) / 1_000_000);
        } catch (RefusedUpdate e) {
            return new AveragedPart(part, null, 0, null, -1, 0, null, e.slot, e.getMessage(), executor,
                    (System.nanoTime() - t0) / 1_000_000);
        } finally {
            open.forEach(AdapterStateFile.Reader::close);
        }
    }

    /** A slot's update read tensor by tensor, each tensor's bytes checked against its digest as they are used. */
    private static final class VerifiedSource implements UpdateAverager.Source {
        private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private final int slot;
        private final AdapterStateFile.Reader file;
        private final Map<String, String> expected = new HashMap<>();

        VerifiedSource(int slot, AdapterStateFile.Reader file, SegmentDigests digests) {
            this.slot = slot;
            this.file = file;
            for (int i = 0; i < digests.tensors().length; i++) {
                expected.put(digests.tensors()[i], digests.crc32c()[i]);
            }
        }

        @Override
        public float[] read(String key, int part) {
            String name = AdapterStateFile.Reader.tensorName(key, part);
            // One read of the bytes: checksummed, then decoded, from the same (mapped or scratch) segment.
            return file.withRawBytes(name, bytes -> {
                String actual = SegmentDigests.crc32c(bytes.asByteBuffer());
                if (!actual.equals(expected.get(name))) {
                    throw new RefusedUpdate(slot, "slot " + slot + "'s update " + file.location() + " has tensor '"
                            + name + "' with CRC32C " + actual + ", which does not match the CRC32C its task reported ("
                            + expected.get(name) + ")");
                }
                return bytes.toArray(F32_LE);
            });
        }
    }
}
