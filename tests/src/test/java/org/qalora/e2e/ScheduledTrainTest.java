package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.driver.pipeline.OutputLock;
import org.qalora.driver.pipeline.TrainPipeline;
import org.qalora.driver.pipeline.WarmStart;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.testing.Fixtures;

/**
 * Scheduled fine-tuning on a real HDFS (MiniDFSCluster): the ticks of a schedule on one output directory, each
 * {@code --warm-start LATEST --keep-versions 1} on the day partitions it is given as a glob, plus a warm start into a
 * fresh output. The driver runs in this JVM (Spark {@code local[2]}: executors do not matter here) except for tick 2,
 * a real driver process held (alive, holding the output lock) between its publish and the LATEST flip, then killed
 * with SIGKILL. In order:
 * <ol>
 *   <li>tick 1 (days 01-02, a glob): no version yet, so a fresh adapter; the glob's sorted matches are what it read;
 *   <li>a warm start from tick 1's published adapter into another output: its round 0 is that adapter with its Adam
 *   moments and step; a different rank is refused before any work;
 *   <li>tick 2 (day 03), a driver process held after its new version is complete but before LATEST flips: a run
 *   started on the same output meanwhile is refused in seconds naming the holder, and changes no byte there; nothing
 *   was deleted before the flip. Killed, then rerun here after a new file arrived in its partition: the rerun
 *   recovers the dead driver's lock, resumes on the files its glob matched at first, completes the publish, deletes tick 1's version, and ends with the version an uninterrupted warm start from tick 1 publishes
 *   (the same name: the final state is bit-identical);
 *   <li>the output lock against a second HDFS client on another host: refused while its lease lives, taken over
 *   once that client died and its lease expired;
 *   <li>tick 3 (day 04), a driver process held after LATEST flipped to its version but before --keep-versions deleted
 *   tick 2's, then killed: the rerun finishes the retention, and LATEST never named a deleted or incomplete version;
 *   <li>a warm start from a PEFT adapter directory without optimizer state: its A and B, fresh Adam moments, step 0.
 * </ol>
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class ScheduledTrainTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path LOGS = Path.of("target", "scheduled-train-logs");
    @TempDir
    static Path base;
    private static TestCluster cluster;
    private static SparkSession spark;
    private static Storage storage;
    /** Tick 1's published version. */
    private static String tick1;

    @BeforeAll
    static void start() throws Exception {
        Files.createDirectories(LOGS);
        cluster = new TestCluster(base);
        cluster.putTinyTrainingInputs();
        // Four day partitions of 15 records each (JSONL), each with a _SUCCESS marker that a glob must not read.
        JsonNode records = JSON.readTree(Fixtures.root().resolveSibling("samples").resolve("alpaca-sample.json").toFile());
        for (int day = 1; day <= 4; day++) {
            StringBuilder part = new StringBuilder();
            for (int i = (day - 1) * 15; i < day * 15; i++) {
                part.append(JSON.writeValueAsString(records.get(i))).append('\n');
            }
            Path dir = Files.createDirectories(base.resolve("days/day=2026-12-0" + day));
            Files.writeString(dir.resolve("part-00000.jsonl"), part);
            Files.writeString(dir.resolve("_SUCCESS"), "");
        }
        cluster.put(base.resolve("days"), "/data/days");
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2]", "ScheduledTrainTest")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1")
                .set("spark.hadoop.dfs.replication", "1");
        spark = SparkSession.builder().config(conf).getOrCreate();
        storage = new Storage(spark.sparkContext().hadoopConfiguration());
    }

    @AfterAll
    static void stop() {
        TestCluster.stop(spark, cluster);
    }

    private static String days(String glob) {
        return cluster.uri("/data/days/day=2026-12-" + glob + "/*.jsonl");
    }

    /** The command every tick runs, as CLI flags (a driver process) and as the same job here. */
    private static List<String> args(String output, String data, String warmStart, int keepVersions) {
        List<String> a = new ArrayList<>(List.of("--model", cluster.uri("/models/tiny-gptq"),
                "--tokenizer", cluster.uri("/tok/tokenizer.json"), "--data", data, "--output", cluster.uri(output),
                "--rounds", "2", "--steps-per-round", "2", "--slots", "2", "--batch-size", "8",
                "--micro-batch-tokens", "256", "--seed", "7", "--device", "cpu", "--keep-rounds", "10",
                "--keep-versions", Integer.toString(keepVersions)));
        if (warmStart != null) {
            a.addAll(List.of("--warm-start", warmStart));
        }
        return a;
    }

    private static TrainJob job(List<String> args, Map<String, Object> overrides) {
        Map<String, Object> flags = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i += 2) {
            String key = args.get(i).substring(2);
            flags.put(key, key.equals("data") ? List.of(args.get(i + 1)) : args.get(i + 1));
        }
        flags.putAll(overrides);
        for (String k : List.of("rounds", "steps-per-round", "slots", "batch-size", "micro-batch-tokens", "seed",
                "keep-rounds", "keep-versions", "rank")) {
            if (flags.get(k) instanceof String s) {
                flags.put(k, Integer.parseInt(s));
            }
        }
        return TrainJobLoader.build("test", TrainJobLoader.defaults(Fixtures.root().getParent().toString()), flags);
    }

    private static TrainPipeline.Outcome train(List<String> args, List<String> log) {
        return new TrainPipeline(Fixtures.root().getParent(), log::add).run(job(args, Map.of()), spark);
    }

    private static RunOutput output(String path) throws Exception {
        return new RunOutput(cluster.fs(), cluster.uri(path));
    }

    private static AdapterTensors state(String file) {
        return AdapterStateFile.read(storage, storage.path(file)).state();
    }

    private static JsonNode runFile(String output) throws Exception {
        return JSON.readTree(cluster.fs().open(new org.apache.hadoop.fs.Path(cluster.uri(output + "/run.json")))
                .readAllBytes());
    }

    private static List<String> versions(RunOutput out) {
        return out.list("").stream().filter(n -> n.startsWith("v-")).sorted().toList();
    }

    private static DriverProcess driver(String name, List<String> args) throws Exception {
        List<String> all = new ArrayList<>(args);
        all.addAll(List.of("--master", "local[2]", "--conf", "spark.hadoop.dfs.replication=1",
                "--conf", "spark.ui.enabled=false"));
        return DriverProcess.train(Files.createDirectories(base.resolve("work-" + name)), LOGS.resolve(name + ".log"),
                all);
    }

    @Test
    @Order(1)
    void theFirstTickStartsFreshOnTheSortedMatchesOfItsGlobAndAGlobMatchingNothingIsRefused() throws Exception {
        String nothing = cluster.uri("/data/days/day=2027-*/*.jsonl");
        InvalidSettingsException refused = assertThrows(InvalidSettingsException.class,
                () -> train(args("/sched/none", nothing, "LATEST", 1), new ArrayList<>()));
        assertTrue(refused.getMessage().contains("--data " + nothing + ": the glob matches no file"), refused.getMessage());
        assertFalse(cluster.fs().exists(new org.apache.hadoop.fs.Path(cluster.uri("/sched/none"))),
                "a refused run leaves nothing behind");

        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out = train(args("/sched/a", days("0[12]"), "LATEST", 1), log);
        assertTrue(log.stream().anyMatch(l -> l.contains("has no published version yet: starting from a fresh adapter")),
                String.join("\n", log));
        List<String> read = new ArrayList<>();
        runFile("/sched/a").get("settings").get("data").forEach(n -> read.add(n.asText()));
        assertEquals(List.of(cluster.uri("/data/days/day=2026-12-01/part-00000.jsonl"),
                cluster.uri("/data/days/day=2026-12-02/part-00000.jsonl")), read, "the glob's matches, sorted, no _SUCCESS");
        assertFalse(runFile("/sched/a").get("settings").has("warm-start"), "a fresh start is a run without warm start");
        tick1 = out.published().toString();
        assertTrue(storage.exists(storage.path(tick1 + "/" + WarmStart.STATE_FILE)), "the version carries its state");
        assertFalse(output("/sched/a").exists(OutputLock.FILE), "the lock is released");
    }

    @Test
    @Order(2)
    void aWarmStartIntoAnotherOutputStartsFromThePublishedAdapterAndAnotherRankIsRefusedBeforeAnyWork()
            throws Exception {
        InvalidSettingsException refused = assertThrows(InvalidSettingsException.class, () -> new TrainPipeline(
                Fixtures.root().getParent(), s -> {}).run(job(args("/sched/rank4", days("03"), tick1, 0),
                Map.of("rank", 4)), spark));
        assertTrue(refused.getMessage().contains("--warm-start " + tick1 + " was trained on another base or adapter shape")
                && refused.getMessage().contains("rank 8 there, 4 here")
                && refused.getMessage().contains(cluster.uri("/sched/rank4")), refused.getMessage());
        assertFalse(cluster.fs().exists(new org.apache.hadoop.fs.Path(cluster.uri("/sched/rank4"))));

        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out = train(args("/sched/b", days("03"), tick1 + "/adapter", 0), log);
        AdapterTensors published = state(tick1 + "/" + WarmStart.STATE_FILE);
        AdapterTensors round0 = state(cluster.uri("/sched/b/checkpoints/round-00000/adapter_state.safetensors"));
        assertTrue(published.step() > 0 && round0.bitwiseEquals(published),
                "round 0 is the published adapter, Adam moments and step included");
        assertEquals(published.step() + 2 * 2, out.rounds().last().manifest().globalStep(), "the step counter continues");
        assertTrue(log.stream().anyMatch(l -> l.contains("warm start: from " + tick1)), String.join("\n", log));
    }

    @Test
    @Order(3)
    void aRunOverlappingATickIsRefusedNamingTheHolderAndTheKilledTickResumesToTheUninterruptedVersion()
            throws Exception {
        String reference = train(args("/sched/reference", days("03"), tick1, 0), new ArrayList<>()).published().getName();

        List<String> tick = args("/sched/a", days("03"), "LATEST", 1);
        List<String> held = new ArrayList<>(tick);
        held.addAll(List.of("--conf", HoldPoint.CONF_KEY + "=" + HoldPoint.VERSION_RENAMED));
        RunOutput out = output("/sched/a");
        String v1 = storage.path(tick1).getName();
        try (DriverProcess second = driver("tick-2", held)) {
            // Held (alive, holding the lock) right after its new version's rename, before the LATEST flip.
            second.awaitLine(l -> l.startsWith("qalora: " + HoldPoint.HOLDING), "the hold after the version's rename");
            Map<String, byte[]> before = out.files();
            long t0 = System.nanoTime();
            InvalidSettingsException refused = assertThrows(InvalidSettingsException.class,
                    () -> train(tick, new ArrayList<>()));
            double seconds = (System.nanoTime() - t0) / 1e9;
            System.out.printf("ScheduledTrainTest: the overlapping run was refused in %.2f s%n", seconds);
            assertTrue(refused.getMessage().contains("--output " + cluster.uri("/sched/a") + " is in use by another run")
                    && refused.getMessage().contains("held by pid " + second.pid() + " on "), refused.getMessage());
            assertTrue(seconds < 10, "refused in " + seconds + " s");
            Map<String, byte[]> after = out.files();
            assertEquals(before.keySet(), after.keySet(), "the refused run wrote or removed nothing");
            before.forEach((name, bytes) -> assertTrue(java.util.Arrays.equals(bytes, after.get(name)), name));
            // The same from a second driver process (the command line): refused before it even starts Spark.
            try (DriverProcess third = driver("tick-2-overlap", tick)) {
                long p0 = System.nanoTime();
                assertEquals(2, third.awaitExit(), "refused as bad settings; output: " + third.log());
                System.out.printf("ScheduledTrainTest: the overlapping driver process ended in %.1f s%n",
                        (System.nanoTime() - p0) / 1e9);
                assertTrue(third.lines().stream().anyMatch(l -> l.contains("is in use by another run")
                        && l.contains("held by pid " + second.pid())), third.tail());
                assertTrue(third.lines().stream().noneMatch(l -> l.contains("qalora: warm start")),
                        "refused before Spark started and the run's checks ran: " + third.tail());
            }
            Map<String, byte[]> afterProcess = out.files();
            assertEquals(before.keySet(), afterProcess.keySet(), "the refused driver process wrote or removed nothing");
            assertTrue(second.isAlive(), "the first run is untouched");

            assertEquals(List.of(reference, v1).stream().sorted().toList(), versions(out),
                    "the new version is complete and --keep-versions deleted nothing before the flip");
            assertEquals(v1, out.latest().orElseThrow(), "LATEST still names tick 1");
            second.kill();
        }
        // A new partition file arrives before the restart: the restarted tick resumes on what its glob matched then.
        cluster.put(base.resolve("days/day=2026-12-04/part-00000.jsonl"), "/data/days/day=2026-12-03/part-00001.jsonl");
        List<String> log = new ArrayList<>();
        train(tick, log);   // the killed driver's lock: its pid is gone on this host, so its lease is recovered at once
        String all = String.join("\n", log);
        assertTrue(all.contains("on the 1 data file(s) its glob matched when it started (it matches 2 now"), all);
        assertTrue(all.contains("that no longer runs: recovering its HDFS lease"), all);
        assertTrue(all.contains("completing that publish"), all);
        assertEquals(reference, out.latest().orElseThrow(), "bit-identical to the uninterrupted warm start");
        assertEquals(List.of(reference), versions(out), "--keep-versions 1 deleted tick 1's version after the flip");
        assertFalse(out.exists(OutputLock.FILE), "the lock is released");
        assertTrue(new ModelPublisher(storage).verify(storage.path(cluster.uri("/sched/a/" + reference))).isEmpty());
        assertEquals(storage.path(tick1).toString(), WarmStart.Source.parse(runFile("/sched/a").get("settings")
                .get("warm-start").asText()).orElseThrow().version(), "run.json records the resolved start");
    }

    /**
     * The lock against a second HDFS client (its own lease), as another driver process on another host would hold it:
     * refused at once while that client lives; once it dies mid-write (it stops renewing, nothing is closed) and
     * its lease expires, the NameNode recovers the lease and the lock is taken over, by one client only.
     */
    @Test
    @Order(4)
    void anHdfsLockIsRefusedWhileItsHoldersLeaseLivesAndTakenOverOnceTheDeadHoldersLeaseExpires() throws Exception {
        org.apache.hadoop.fs.Path out = storage.path(cluster.uri("/sched/locked"));
        storage.mkdirs(out);
        FileSystem other = FileSystem.newInstance(cluster.hdfs.getURI(), spark.sparkContext().hadoopConfiguration());
        FSDataOutputStream held = other.create(new org.apache.hadoop.fs.Path(out, OutputLock.FILE), false);
        held.write("pid 4242 on other-host (user spark, since 2026-12-06T03:00:00Z)\n".getBytes(StandardCharsets.UTF_8));
        held.hflush();

        List<String> log = new ArrayList<>();
        long t0 = System.nanoTime();
        InvalidSettingsException e = assertThrows(InvalidSettingsException.class,
                () -> OutputLock.acquire(storage, out, log::add));
        assertTrue((System.nanoTime() - t0) < TimeUnit.SECONDS.toNanos(5), "refused at once");
        assertTrue(e.getMessage().contains("is held by pid 4242 on other-host")
                && e.getMessage().contains("its HDFS lease is live"), e.getMessage());

        cluster.hdfs.setLeasePeriod(500, 60_000);
        ((DistributedFileSystem) other).getClient().closeAllFilesBeingWritten(true);
        Thread.sleep(1_000);
        try (OutputLock lock = OutputLock.acquire(storage, out, log::add)) {
            assertTrue(String.join("\n", log).contains("took over " + lock.file() + ", left by pid 4242 on other-host"),
                    String.join("\n", log));
            assertThrows(Exception.class, () -> other.append(lock.file()), "the other client cannot take it back");
        }
        assertFalse(storage.exists(new org.apache.hadoop.fs.Path(out, OutputLock.FILE)), "released");
        other.close();
    }
    /**
     * A crash between the LATEST flip and the retention's deletes: the killed tick left two complete versions, LATEST
     * naming its own; the rerun (a resumed glob run: it does not resolve {@code --warm-start LATEST} again, which now
     * names its own output) publishes nothing new, deletes the older version, and leaves only complete versions.
     */
    @Test
    @Order(5)
    void aTickKilledAfterTheLatestFlipButBeforeTheRetentionFinishesItOnTheRerun() throws Exception {
        RunOutput out = output("/sched/a");
        List<String> before = versions(out);
        assertEquals(1, before.size(), "tick 2 left one version: " + before);
        String previous = before.getFirst();
        List<String> tick = args("/sched/a", days("04"), "LATEST", 1);
        List<String> held = new ArrayList<>(tick);
        held.addAll(List.of("--conf", HoldPoint.CONF_KEY + "=" + HoldPoint.LATEST_FLIPPED));
        String flipped;
        try (DriverProcess third = driver("tick-3", held)) {
            third.awaitLine(l -> l.startsWith("qalora: " + HoldPoint.HOLDING + HoldPoint.LATEST_FLIPPED),
                    "the hold after the LATEST flip");
            flipped = out.latest().orElseThrow();
            assertNotEquals(previous, flipped, "LATEST names tick 3's version");
            assertEquals(List.of(previous, flipped).stream().sorted().toList(), versions(out),
                    "nothing is deleted yet");
            third.kill();
        }
        out.checkNothingHalfWrittenIsVisible("after a kill after the LATEST flip");
        assertEquals(flipped, out.latest().orElseThrow(), "the kill changed nothing");

        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome rerun = train(tick, log);
        String all = String.join("\n", log);
        assertTrue(all.contains("merge: this run's final model is already published"), all);
        assertTrue(all.contains("--keep-versions 1: deleted " + cluster.uri("/sched/a/" + previous)), all);
        assertEquals(flipped, rerun.published().getName(), "the rerun ends on the version the killed tick published");
        assertEquals(flipped, out.latest().orElseThrow(), "LATEST still names it");
        assertEquals(List.of(flipped), versions(out), "--keep-versions 1 finished the retention");
        out.checkNothingHalfWrittenIsVisible("after the rerun");
        assertFalse(out.exists(OutputLock.FILE), "the lock is released");
    }

    /**
     * A warm start from a PEFT adapter directory that has no optimizer state (the fixture QA-LoRA adapter, on HDFS):
     * round 0 is its A and B with zero Adam moments at step 0, and the step counter starts from there.
     */
    @Test
    @Order(6)
    void aWarmStartFromAPeftAdapterWithoutStateStartsFromItsWeightsWithFreshMoments() throws Exception {
        cluster.put(Fixtures.tinyLlamaAdapter(), "/adapters/peft");
        List<String> log = new ArrayList<>();
        TrainPipeline.Outcome out = train(args("/sched/peft", days("01"), cluster.uri("/adapters/peft"), 0), log);
        assertTrue(log.stream().anyMatch(l -> l.contains("warm start: from the PEFT adapter " + cluster.uri("/adapters/peft"))
                && l.contains("fresh Adam moments, step 0")), String.join("\n", log));
        AdapterTensors round0 = state(cluster.uri("/sched/peft/checkpoints/round-00000/adapter_state.safetensors"));
        Map<String, float[]> peft = org.qalora.worker.adapter.PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString())
                .weights();
        assertEquals(0, round0.step());
        assertEquals(peft.keySet(), new java.util.HashSet<>(round0.keys()));
        for (String k : round0.keys()) {
            assertTrue(java.util.Arrays.equals(peft.get(k), round0.tensor(k).weights()), k + ": the adapter's weights");
            assertTrue(java.util.Arrays.equals(new float[round0.tensor(k).size()], round0.tensor(k).adamM())
                    && java.util.Arrays.equals(new float[round0.tensor(k).size()], round0.tensor(k).adamV()),
                    k + ": fresh Adam moments");
        }
        assertEquals(2 * 2, out.rounds().last().manifest().globalStep(), "the step counter starts at 0");
    }
}
