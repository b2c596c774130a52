package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.fs.FileStatus;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.driver.pipeline.PublishStage;
import org.qalora.driver.pipeline.WarmStart;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.Projection;

/**
 * {@code qalora train} on a model of LLaMA-7B's widths ({@link SevenBShapeCheckpoint}: 2 layers by default, 1.3 GB of
 * F16 on HDFS, sharded; {@code -Dqalora.sevenB.layers=32} for LLaMA-7B's 32, 13.5 GB), end to end with bounded heaps:
 * RTN quantize, one round of 2 slots x 1 step on short sequences with a rank-64 adapter on all seven projections, the
 * merge job, the publish. The driver is its own JVM (started as {@code bin/qalora} starts it) with {@code -Xmx}
 * {@value #DRIVER_HEAP_MB}m whatever the layer count, and its executors ({@code local-cluster[2,1,...]};
 * {@code -Dqalora.sevenB.executors=N} for N) get {@value #EXECUTOR_HEAP_MB}m each at 2 layers plus
 * {@value #EXECUTOR_HEAP_MB_PER_LAYER}m per further layer; HDFS is a MiniDFSCluster in this JVM.
 *
 * <p>Why the bounds catch a regression:
 * <ul>
 *   <li>Driver, {@value #DRIVER_HEAP_MB}m: about 100 MB of it is Spark's own (largest heap seen after a collection:
 *   81-132 MB). Any one weight of the base on the driver does not fit beside that (the 32000 x 4096 embedding is
 *   262 MB as F16, 524 MB as float), nor does the adapter state handled whole: with its Adam moments it is 67 MB
 *   (5.6 M parameters x 3 x 4 bytes; 1.1 GB at 32 layers, which ran under the same cap), and the driver as it was
 *   before, building round 0 and reading the final state whole (plus the PEFT weights' copy, zero moments and the
 *   encoding for the SHA-256), reached the cap at round 0 and ended in an OutOfMemoryError reading the final state:
 *   this test failed on it (docs/PERFORMANCE.md).
 *   <li>Executors, {@value #EXECUTOR_HEAP_MB}m at 2 layers: what the run needed by design, measured when the model
 *   held its quantized weights twice: a training task keeps the whole quantized base resident (2.1-2.4 GB live
 *   then, its F16 embedding and lm_head held as float), and the merge check loads a base and a merged model (2.4 GB
 *   live). An executor that also kept its trainer's base during the check ran out (the reason for
 *   {@code ExecutorCache.releaseAll}), as would a task holding the dense model as float (2.6 GB). Since the model
 *   holds them once the training task's live set at 2 layers is 1.55 GB after a full collection; whether 3072m still
 *   catches a trainer's base kept during the check has not been re-run. A quantize or merge task that materialised
 *   the 0.8 GB quantized model would still fit here: the per-task bounds of those tasks (640m, 96m) are
 *   {@code ShardTaskHeapTest}'s.
 *   <li>Executors, each further layer: {@value #EXECUTOR_HEAP_MB_PER_LAYER}m, over the 204 MB per layer the training
 *   task's live set grows by (1,517 MB at 2 layers, 2,739 MB at 8: the largest of the class histograms that a side
 *   {@code jcmd GC.class_histogram} loop took every 5 s, docs/PERFORMANCE.md). By the arithmetic, which that matches: a
 *   layer's int4 codes and float scales and zeros, once, in the CPU kernel's blocked layout (152 MB), and its
 *   rank-64 adapter in four float copies (the trainer's weights, gradients and Adam moments: 45 MB), the round's
 *   start state being a local file whose copy each task hands to its trainer, and the slot's result the trainer's
 *   arrays. It was 320m while the executor also kept the start state on its heap, the trainer trained in a copy of
 *   it and the result was copied twice more (ten copies: 267-272 MB per layer), and 512m while the model also kept
 *   each matrix as loaded (0.5 GB per layer measured at 32 layers: 14.1 GB live; 4,277 MB at 8). 32 layers ran in
 *   18432m then only with {@code -XX:G1HeapRegionSize=64m}: with G1's default regions at that heap (16 MB) every
 *   code array (8 MiB and a header for q/k/v/o, 22.5 MB for gate/up/down) is humongous and wastes its last region's
 *   tail (over 2 GB of filler seen while the base was still loading), and three executors in turn ran out. At the
 *   320m cap 32 layers passed in 12672m (9,411 MB live after a full collection, same G1 option); at 240m (10272m)
 *   32 layers have not been run (7.6 GB live predicted from 2 and 8 layers).
 * </ul>
 * Each JVM logs its collections ({@code -Xlog:gc}); the test prints the largest heap seen after a collection (the
 * live set) and before one, per process, which docs/PERFORMANCE.md records. It writes about 4 GB to HDFS and runs
 * for minutes on 2 cores (32 layers, at the earlier cap: 13 minutes, 13.5 GB of F16 in, one executor of 18 GB), so
 * it runs only when asked: {@code -Dqalora.heavy=true} ({@code -Dqalora.heap.driver.mb=N},
 * {@code -Dqalora.heap.executor.mb=N} try other caps, {@code -Dqalora.sevenB.executorJvmOptions=...} adds executor JVM
 * options; past a few layers the check that loads the published model in this JVM needs a larger
 * {@code -Dqalora.test.heap} than pom.xml's 3g: 6g ran 8 layers, 9g ran 32; 16g did before the model held its
 * weights once).
 */
@EnabledIfSystemProperty(named = "qalora.heavy", matches = "true")
class SevenBTrainHeapTest {
    static final int DRIVER_HEAP_MB = 256;
    static final int EXECUTOR_HEAP_MB = 3072;
    /** Executor heap added per layer beyond 2: the live set's growth per layer, measured, plus a margin (javadoc). */
    static final int EXECUTOR_HEAP_MB_PER_LAYER = 240;
    /** Minutes added to the time limits per layer beyond 2: a hang guard, 10 x the 12 s per layer measured (8 -> 32). */
    static final int MINUTES_PER_LAYER = 2;
    private static final int LAYERS = Integer.getInteger("qalora.sevenB.layers", 2);
    private static final int EXECUTORS = Integer.getInteger("qalora.sevenB.executors", 2);
    private static final int RANK = 64;
    private static final Pattern GC_LINE = Pattern.compile("(\\d+)M->(\\d+)M\\((\\d+)M\\)");

    /** The driver's output and every JVM's GC log, kept after the run (under the module's target/) to read. */
    private static final Path LOGS = Path.of("target", "seven-b-heap-logs");

    @TempDir
    static Path base;
    private static TestCluster cluster;

    @BeforeAll
    static void start() throws IOException {
        cluster = new TestCluster(base);
    }

    @AfterAll
    static void stop() {
        TestCluster.stop(null, cluster);
    }

    /** The executor cap for {@code layers} layers: the 2-layer cap plus what each further layer was measured to add. */
    static int executorHeapMb(int layers) {
        return EXECUTOR_HEAP_MB + EXECUTOR_HEAP_MB_PER_LAYER * Math.max(0, layers - 2);
    }

    /**
     * The run's time limit: 25 minutes at 2 layers (20 for the driver), as before, plus MINUTES_PER_LAYER per
     * further layer, which the stages' times scale with (every stage but the driver's start reads or writes
     * every layer).
     */
    static Duration limit(int layers, int minutesAt2) {
        return Duration.ofMinutes(minutesAt2 + (long) MINUTES_PER_LAYER * Math.max(0, layers - 2));
    }

    @Test
    void aSevenBShapedModelIsQuantizedTrainedMergedAndPublishedWithBoundedHeaps() {
        assertTrue(LAYERS >= 1 && EXECUTORS >= 1, "qalora.sevenB.layers and qalora.sevenB.executors must be >= 1");
        // Preemptive: a hung stage ends the test at the limit (the class-wide @Timeout it replaces could not scale).
        assertTimeoutPreemptively(limit(LAYERS, 25), this::run);
    }

    private void run() throws Exception {
        int driverMb = Integer.getInteger("qalora.heap.driver.mb", DRIVER_HEAP_MB);
        int executorMb = Integer.getInteger("qalora.heap.executor.mb", executorHeapMb(LAYERS));
        long t0 = System.nanoTime();
        SevenBShapeCheckpoint.write(cluster.fs(), new org.apache.hadoop.fs.Path("/models/llama7b-shape"), LAYERS,
                base.resolve("config"));
        cluster.put(Fixtures.root().resolveSibling("samples").resolve("alpaca-sample.json"), "/data/alpaca.json");
        long written = System.nanoTime();

        Path work = Files.createDirectories(base.resolve("driver"));
        Path gcLogs = LOGS.toAbsolutePath();
        if (Files.isDirectory(gcLogs)) { // only this run's logs
            try (var old = Files.list(gcLogs)) {
                for (Path p : old.toList()) {
                    Files.delete(p);
                }
            }
        }
        Files.createDirectories(gcLogs);
        Path sparkHome = Path.of(System.getProperty("qalora.spark.home", "target/spark-home"));
        Files.createDirectories(sparkHome.resolve("jars")); // local-cluster's executors need SPARK_HOME/jars (empty)
        List<String> args = new ArrayList<>(List.of(
                "--model", cluster.uri("/models/llama7b-shape"), "--data", cluster.uri("/data/alpaca.json"),
                "--output", cluster.uri("/runs/7b"), "--quantize", "rtn", "--rank", Integer.toString(RANK),
                "--rounds", "1", "--steps-per-round", "1", "--slots", "2", "--batch-size", "1",
                "--source-max-len", "16", "--target-max-len", "8", "--micro-batch-tokens", "64",
                "--max-shard-size", "400MB", "--seed", "7", "--device", "cpu",
                "--master", "local-cluster[" + EXECUTORS + ",1," + executorMb + "]"));
        Map<String, String> conf = new java.util.LinkedHashMap<>();
        conf.put("spark.executor.memory", executorMb + "m");
        conf.put("spark.executor.extraClassPath", System.getProperty("surefire.test.class.path"));
        // qalora.sevenB.executorJvmOptions: e.g. a G1 region size; at 32 layers the default 16 MB regions waste
        // over 2 GB on the tails of humongous code arrays (docs/PERFORMANCE.md).
        conf.put("spark.executor.extraJavaOptions", System.getProperty("qalora.jvm.flags", "") + " "
                + System.getProperty("qalora.sevenB.executorJvmOptions", "")
                + " -Xlog:gc:file=" + gcLogs.resolve("executor-%p.log") + ":uptime");
        conf.put("spark.driver.host", "127.0.0.1");
        conf.put("spark.ui.enabled", "false");
        conf.put("spark.hadoop.dfs.replication", "1");
        // Spark refuses a JVM of less than 450 MB for its fixed 300 MB "reserved" accounting, which allocates
        // nothing; the driver's real need is what this test bounds, so the accounting is turned off.
        conf.put("spark.testing.reservedMemory", "0");
        conf.forEach((k, v) -> args.addAll(List.of("--conf", k + "=" + v)));
        Path driverGc = gcLogs.resolve("driver.log");
        try (DriverProcess driver = DriverProcess.train(work, gcLogs.resolve("driver-output.log"),
                List.of("-Xmx" + driverMb + "m", "-Xlog:gc:file=" + driverGc + ":uptime"), args)) {
            driver.awaitSuccess(limit(LAYERS, 20));
        }
        long trained = System.nanoTime();

        Storage storage = new Storage(cluster.fs().getConf());
        org.apache.hadoop.fs.Path root = storage.path(cluster.uri("/runs/7b"));
        ModelPublisher publisher = new ModelPublisher(storage);
        org.apache.hadoop.fs.Path published = publisher.latest(root).orElseThrow();
        assertTrue(publisher.verify(published).isEmpty(), "the published files match their manifest");
        checkPublishedModel(published);
        checkPublishedState(storage, root, published);
        try (CpuBackend be = new CpuBackend(1)) {
            LlamaModel merged = LlamaModel.load(published.toString(), be, new HadoopPaths(cluster.fs().getConf()));
            assertEquals(LAYERS * Projection.values().length, merged.quantizedMatrices().size(),
                    "the merged model loads with every projection quantized");
        }

        System.out.printf(Locale.ROOT, "SevenBTrainHeapTest (%s, r %d): writing the model %.1f s, train %.1f s, "
                        + "checks %.1f s; HDFS: F16 in %d MB, published %d MB; driver -Xmx%dm: %s; %d executors "
                        + "-Xmx%dm: %s%n",
                SevenBShapeCheckpoint.describe(LAYERS), RANK, (written - t0) / 1e9, (trained - written) / 1e9,
                (System.nanoTime() - trained) / 1e9, mb("/models/llama7b-shape"), mb(published.toUri().getPath()),
                driverMb, heapSeen(List.of(driverGc)), EXECUTORS, executorMb, heapSeen(executorLogs(gcLogs)));
    }

    private static long mb(String hdfsPath) throws IOException {
        return cluster.fs().getContentSummary(new org.apache.hadoop.fs.Path(hdfsPath)).getLength() >> 20;
    }

    /** Sharded layout with its index; qweight, qzeros and scales of all seven projections of every layer. */
    private static void checkPublishedModel(org.apache.hadoop.fs.Path published) throws IOException {
        List<String> names = new ArrayList<>();
        for (FileStatus st : cluster.fs().listStatus(published)) {
            names.add(st.getPath().getName());
        }
        assertTrue(names.contains(Checkpoint.INDEX_FILE) && names.contains("config.json")
                && names.contains(PublishStage.ADAPTER_DIR) && names.contains(WarmStart.STATE_FILE), names.toString());
        long shards = names.stream().filter(n -> n.matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
        assertTrue(shards >= 2, "the int4 model (760 MB at 2 layers) in shards of at most 400 MB: " + names);
        JsonNode weightMap;
        try (var in = cluster.fs().open(new org.apache.hadoop.fs.Path(published, Checkpoint.INDEX_FILE))) {
            weightMap = new ObjectMapper().readTree(in).get("weight_map");
        }
        for (int l = 0; l < LAYERS; l++) {
            for (Projection p : Projection.values()) {
                for (String t : List.of(".qweight", ".qzeros", ".scales")) {
                    JsonNode shard = weightMap.get(p.prefix(l) + t);
                    assertTrue(shard != null && names.contains(shard.asText()), p.prefix(l) + t + " in " + names);
                }
            }
        }
    }

    /**
     * The version's adapter_state.safetensors, which the driver streamed from the round's parts, is the file the
     * state read whole would give, and holds the rank-64 adapter of all 7 projections of every layer.
     */
    private static void checkPublishedState(Storage storage, org.apache.hadoop.fs.Path root,
                                            org.apache.hadoop.fs.Path published) {
        CheckpointStore store = new CheckpointStore(storage, new org.apache.hadoop.fs.Path(root, "checkpoints"), s -> {});
        CheckpointStore.Committed last = store.latestCommitted().orElseThrow();
        assertEquals(1, last.round());
        assertTrue(last.stateFiles().size() > 1, "round 1 was averaged into parts: " + last.stateFiles());
        var state = store.loadState(last);
        assertEquals(2 * LAYERS * Projection.values().length, state.keys().size());
        assertEquals(RANK, state.tensor(state.keys().get(0)).shape()[0]);
        assertEquals(AdapterStateFile.sha256Of(state, Map.of("round", "1")),
                storage.sha256(new org.apache.hadoop.fs.Path(published, WarmStart.STATE_FILE)),
                "the streamed one-file state is byte for byte the file of the state read whole");
    }

    private static List<Path> executorLogs(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().startsWith("executor-")).sorted().toList();
        }
    }

    /** Per log: the largest heap after a collection (live) and before one, from {@code -Xlog:gc} lines. */
    static String heapSeen(List<Path> logs) throws IOException {
        List<String> out = new ArrayList<>();
        for (Path log : logs) {
            long after = 0, before = 0, afterFull = -1;
            int collections = 0;
            for (String line : Files.readAllLines(log)) {
                Matcher m = GC_LINE.matcher(line);
                if (m.find()) {
                    before = Math.max(before, Long.parseLong(m.group(1)));
                    after = Math.max(after, Long.parseLong(m.group(2)));
                    // Only a full collection leaves nothing dead behind: its "after" is the live set at that moment,
                    // where a young one's (near the cap, or with to-space exhausted) can be old garbage too.
                    if (line.contains("Pause Full")) {
                        afterFull = Math.max(afterFull, Long.parseLong(m.group(2)));
                    }
                    collections++;
                }
            }
            out.add(String.format(Locale.ROOT, "largest live after GC %d MB, before GC %d MB (%d collections)%s",
                    after, before, collections, afterFull < 0 ? "" : ", largest after a full GC " + afterFull + " MB"));
        }
        return String.join("; ", out);
    }
}
