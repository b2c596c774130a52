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
 * {@link UpdateAverager} does, and writes its part of the round's state into the round's commit directory as the
 * keys come out of the averaging (attempt-unique temporary name, then rename; an earlier attempt's part,
 * bit-identical, is kept). The update
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
                AdapterStateFile.Reader update;
                try {
                    String header = SegmentDigests.headerOf(storage, file);
                    if (!header.equals(digests[slot].header())) {
                        throw new RefusedUpdate(slot, "slot " + slot + "'s update " + file + " has a header with"
                                + " CRC32C " + header + ", which does not match the CRC32C its task reported ("
                                + digests[slot].header() + ")");
                    }
                    update = AdapterStateFile.open(storage, file);
                } catch (java.io.UncheckedIOException e) {
                    throw lostOrRethrow(slot, file, e);
                }
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
            int attempt = ctx == null ? 0 : ctx.attemptNumber();
            faults.maybeFireInAveraging(round, part, attempt, FaultPlan.MergePhase.BEFORE_RENAME);
            String name = CheckpointStore.partFileName(part, ranges.size());
            Path target = new Path(commitDir, name);
            String tempName = String.format("_tmp-part-%05d-stage%d-attempt%d-task%d", part,
                    ctx == null ? 0 : ctx.stageAttemptNumber(), attempt, ctx == null ? 0 : ctx.taskAttemptId());
            String[] sha = new String[1];
            long partStep = step;
            UpdateAverager.KeyStats stats = averageWhileWriting(averager, ranges.get(part), (keys, source) -> sha[0] =
                    AdapterStateFile.writeStreamed(storage, target, tempName, keys, partStep, Map.of("round",
                            Integer.toString(round), "part", Integer.toString(part)), source));
            faults.maybeFireInAveraging(round, part, attempt, FaultPlan.MergePhase.AFTER_RENAME);
            return new AveragedPart(part, name, storage.length(target), sha[0], step, averager.totalTokens(),
                    stats, -1, null, executor, (System.nanoTime() - t0) / 1_000_000);
        } catch (RefusedUpdate e) {
            return new AveragedPart(part, null, 0, null, -1, 0, null, e.slot, e.getMessage(), executor,
                    (System.nanoTime() - t0) / 1_000_000);
        } finally {
            open.forEach(AdapterStateFile.Reader::close);
        }
    }

    /** Writes a part file from the tensors a {@link AdapterStateFile.StreamedTensors} hands over. */
    @FunctionalInterface
    interface PartWriter {
        void write(Map<String, long[]> keys, AdapterStateFile.StreamedTensors source);
    }

    /**
     * Averages {@code keys} on the kernel pool (from a thread of its own) while {@code writer} streams them into the
     * part file on this thread: the keys are averaged in the file's order (by name, as safetensors orders tensors),
     * at most {@link #keysInFlight} of them ahead of the writer, so the SHA-256 and the write of the part overlap the
     * averaging, and the task holds a few keys instead of its whole range (and no byte copy of it). The arithmetic is
     * {@link UpdateAverager#averageKeys(List)}'s, so the bytes are too. A failed check (or any failure) of the
     * averaging reaches the writer at the key it waits for, which removes its temporary file and rethrows it; a
     * failed write stops the averaging.
     */
    private UpdateAverager.KeyStats averageWhileWriting(UpdateAverager averager, List<String> keys, PartWriter writer) {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, java.util.concurrent.CompletableFuture<AdapterTensors.Tensor>> ready =
                new java.util.concurrent.ConcurrentHashMap<>();
        for (String k : keys) {
            shapes.put(k, layout.get(k));
            ready.put(k, new java.util.concurrent.CompletableFuture<>());
        }
        Integer[] byName = new Integer[keys.size()];
        for (int t = 0; t < byName.length; t++) {
            byName[t] = t;
        }
        java.util.Arrays.sort(byName, java.util.Comparator.comparing(keys::get));
        int[] order = java.util.Arrays.stream(byName).mapToInt(Integer::intValue).toArray();
        int inFlight = keysInFlight(keys);
        java.util.concurrent.Semaphore window = new java.util.concurrent.Semaphore(inFlight);
        java.util.concurrent.atomic.AtomicBoolean stopped = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.CompletableFuture<UpdateAverager.KeyStats> stats = new java.util.concurrent.CompletableFuture<>();
        Thread averaging = Thread.ofPlatform().daemon().name("qalora-averaging-" + Thread.currentThread().getName())
                .start(() -> {
                    try {
                        stats.complete(averager.averageKeys(keys, order, window, stopped::get,
                                (t, tensor) -> ready.get(keys.get(t)).complete(tensor)));
                    } catch (Throwable e) {
                        stats.completeExceptionally(e);
                        ready.values().forEach(f -> f.completeExceptionally(e));
                    }
                });
        try {
            writer.write(shapes, new AdapterStateFile.StreamedTensors() {
                @Override
                public AdapterTensors.Tensor tensor(String key) {
                    return join(ready.get(key));
                }

                @Override
                public void written(String key) {
                    ready.remove(key); // its tensors are in the file: let them go
                    window.release();
                }
            });
        } catch (RuntimeException | Error e) {
            stopped.set(true);
            window.release(keys.size()); // wake every key still waiting for a permit: it sees stopped and skips
            throw e;
        } finally {
            try {
                averaging.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return join(stats);
    }

    /**
     * How many averaged keys may wait for the writer: twice the kernel threads plus one, so every thread has a next
     * key while the writer drains one. If some key's three tensors are not next to each other in the file (a key
     * that extends another's name, e.g. {@code a.w} and {@code a.w-x}), the writer may need several keys at once,
     * so then there is no bound (the whole range, as before streaming).
     */
    private static int keysInFlight(List<String> keys) {
        java.util.TreeSet<String> names = new java.util.TreeSet<>();
        for (String k : keys) {
            for (int part = 0; part < 3; part++) {
                names.add(AdapterStateFile.Reader.tensorName(k, part));
            }
        }
        for (String k : keys) {
            if (!AdapterStateFile.Reader.tensorName(k, 2).equals(names.higher(names.higher(k)))) {
                return Math.max(1, keys.size());
            }
        }
        return 2 * KernelPool.shared().threads() + 1;
    }

    /**
     * A failed read of slot {@code slot}'s update {@code file} as a {@link RefusedUpdate} when the bytes are gone for
     * good: no file, no readable copy of one of its blocks (HDFS's {@code BlockMissingException}; an update file has
     * {@code train --update-replication} copies, 2 by default), or every copy failing its checksum. Only re-training
     * the slot brings those back, so the driver re-runs it; any other I/O failure (a timeout, a DataNode restarting)
     * is rethrown for Spark to retry the averaging task, which re-reads the same file.
     */
    static RuntimeException lostOrRethrow(int slot, Object file, java.io.UncheckedIOException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof java.io.FileNotFoundException || t instanceof org.apache.hadoop.fs.ChecksumException
                    || t.getClass().getSimpleName().equals("BlockMissingException")) {
                return new RefusedUpdate(slot, "slot " + slot + "'s update " + file + " cannot be read: "
                        + t.getClass().getSimpleName() + ": " + t.getMessage());
            }
        }
        return e;
    }

    /** The future's value, or what it failed with (a {@link RefusedUpdate} stays one). */
    private static <T> T join(java.util.concurrent.CompletableFuture<T> f) {
        try {
            return f.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw e;
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
            return read(key, part, null);
        }

        @Override
        public float[] read(String key, int part, float[] scratch) {
            String name = AdapterStateFile.Reader.tensorName(key, part);
            // One read of the bytes: checksummed, then decoded, from the same (mapped or scratch) segment.
            try {
                return decodeChecked(name, scratch);
            } catch (java.io.UncheckedIOException e) {
                throw lostOrRethrow(slot, file.location(), e);
            }
        }

        private float[] decodeChecked(String name, float[] scratch) {
            return file.withRawBytes(name, bytes -> {
                checkCrc(name, SegmentDigests.crc32c(bytes.asByteBuffer()));
                long n = bytes.byteSize() / Float.BYTES;
                if (scratch == null || scratch.length < n) {
                    return bytes.toArray(F32_LE);
                }
                java.lang.foreign.MemorySegment.copy(bytes, F32_LE, 0, scratch, 0, (int) n);
                return scratch;
            });
        }

        /** Local files: the mapped bytes, their CRC32C taken block by block as the blocked sums read them. */
        @Override
        public MappedTensor mapped(String key, int part) {
            String name = AdapterStateFile.Reader.tensorName(key, part);
            java.lang.foreign.MemorySegment bytes = file.mappedBytes(name);
            if (bytes == null) {
                return null;
            }
            java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
            return new MappedTensor(bytes, new MappedTensor.Check() {
                @Override
                public void update(java.lang.foreign.MemorySegment block) {
                    crc.update(block.asByteBuffer());
                }

                @Override
                public void finish() {
                    checkCrc(name, SegmentDigests.hex(crc));
                }
            });
        }

        /** Refuses the update if tensor {@code name}'s bytes have CRC32C {@code actual}, not the one reported. */
        private void checkCrc(String name, String actual) {
            if (!actual.equals(expected.get(name))) {
                throw new RefusedUpdate(slot, "slot " + slot + "'s update " + file.location() + " has tensor '"
                        + name + "' with CRC32C " + actual + ", which does not match the CRC32C its task reported ("
                        + expected.get(name) + ")");
            }
        }
    }
}
