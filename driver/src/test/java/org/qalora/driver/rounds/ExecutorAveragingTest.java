package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.RoundManifest;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.state.AdapterStateFile;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.driver.state.SegmentDigests;
import org.qalora.quant.io.ShippedHadoopConf;

/**
 * The averaging stage on the executors ({@link ExecutorAveraging}, {@link AveragingTask}) against the driver-side
 * averaging it replaced ({@link DriverSideAveraging}), on real update files written as slot tasks write them
 * (2 layers of LLaMA-7B-wide QA-LoRA modules, rank 4, 3 slots with different token counts), on Spark
 * {@code local[2,4]} with Kryo registration required.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class ExecutorAveragingTest {
    private static JavaSparkContext jsc;
    /** The averaging stage's resources in local mode: the default profile ({@link AveragingStageResources}). */
    private static AveragingStageResources LOCAL;
    private static final Storage STORAGE = new Storage(new Configuration());
    @TempDir
    static Path tmp;

    @BeforeAll
    static void startSpark() {
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2,4]", "ExecutorAveragingTest");
        conf.set("spark.ui.enabled", "false");
        jsc = new JavaSparkContext(conf);
        LOCAL = AveragingStageResources.decide(conf, 1);
    }

    @AfterAll
    static void stopSpark() {
        if (jsc != null) {
            jsc.stop();
        }
    }

    /** A checkpoint directory with round 0 committed and round 1's three slot updates written. */
    private record Fixture(CheckpointStore store, CheckpointStore.Committed start, List<SlotMetrics> slots) {}

    private static Fixture fixture(String name) {
        CheckpointStore store = new CheckpointStore(STORAGE, STORAGE.path(tmp.resolve(name).toString()), s -> {});
        CheckpointStore.Committed start = store.commit(0, RoundTrafficBench.state(2, 4, 32, -1, 0), "plan", "cfg", null);
        org.apache.hadoop.fs.Path updates = store.updatesDir(1);
        STORAGE.mkdirs(updates);
        List<SlotMetrics> slots = new ArrayList<>();
        for (int s = 0; s < 3; s++) {
            long tokens = 1_000 + 337L * s;
            SegmentDigests d = AdapterStateFile.writeUpdate(STORAGE, new org.apache.hadoop.fs.Path(updates,
                            CheckpointStore.updateFileName(s)), "_tmp-" + s, RoundTrafficBench.state(2, 4, 32, s, 16),
                    Map.of("target_tokens", Long.toString(tokens), "slot", Integer.toString(s)));
            slots.add(new SlotMetrics(s, 0, "test", "cpu", tokens, 0, 0, d));
        }
        return new Fixture(store, start, slots);
    }

    private static AdapterTensors commit(Fixture f, int round, ExecutorAveraging.Outcome out) {
        assertFalse(out.refused(), () -> out.refusals().toString());
        return f.store().loadState(f.store().commitPrepared(round, out.commitDir(), out.files(), out.step(), "plan",
                "cfg", null));
    }

    @Test
    void theExecutorsAverageBitIdenticalToTheDriverWhateverThePartCount() {
        Fixture f = fixture("parts");
        UpdateAverager.Averaged driver = DriverSideAveraging.average(STORAGE, f.store(), 1, f.start(), List.of(0, 1, 2));
        int round = 1;
        for (int parts : new int[] {1, 2, 5, 14}) {
            ExecutorAveraging.Outcome out = ExecutorAveraging.run(jsc, STORAGE, f.store(), 1, f.start(), f.slots(),
                    parts, LOCAL, FaultPlan.none(), "test");
            assertEquals(KeyRanges.split(AdapterStateFile.layout(STORAGE, f.start().stateFiles()), parts).size(),
                    out.files().size());
            assertTrue(out.files().size() <= parts && (parts > 5 || out.files().size() == parts), out.files().keySet()::toString);
            CheckpointStore.Committed committed = f.store().commitPrepared(round++, out.commitDir(), out.files(),
                    out.step(), "plan", "cfg", null);
            AdapterTensors state = f.store().loadState(committed);
            assertTrue(state.bitwiseEquals(driver.state()), parts + " parts: the state must equal the driver's bit for bit");
            // Each part is streamed while its keys are averaged: the bytes are those the one-shot writer gives.
            for (org.apache.hadoop.fs.Path file : committed.stateFiles()) {
                AdapterStateFile.Contents c = AdapterStateFile.read(STORAGE, file);
                assertEquals(committed.manifest().files().get(file.getName()).sha256(),
                        AdapterStateFile.sha256Of(c.state(), c.metadata()), file.getName());
            }
            assertEquals(driver.totalTokens(), out.totalTokens());
            assertEquals(driver.slotSpread(), out.measures().slotSpread(), 0.0, parts + " parts: slot spread");
            assertEquals(driver.maxFactorDiscordance(), out.measures().maxFactorDiscordance(), 0.0);
            assertEquals(driver.meanFactorDiscordance(), out.measures().meanFactorDiscordance(), 0.0);
            assertEquals(14, out.measures().modulesMeasured(), "2 layers x 7 projections");
            assertTrue(driver.slotSpread() > 0 && driver.maxFactorDiscordance() > 0, "the slots disagree");
        }
    }

    /**
     * The tasks run here one by one in a scrambled order, one of them twice (a rerun after its first attempt was
     * killed, its part already renamed into place) and one after a killed attempt left a half-written temporary
     * file: the parts are the same bytes as in order, and the state the driver's.
     */
    @Test
    void scrambledOrderAndKilledOrRerunTasksGiveTheSameBits() throws Exception {
        Fixture f = fixture("scrambled");
        Map<String, long[]> layout = AdapterStateFile.layout(STORAGE, f.start().stateFiles());
        List<List<String>> ranges = KeyRanges.split(layout, 4);
        SegmentDigests[] digests = f.slots().stream().map(SlotMetrics::update).toArray(SegmentDigests[]::new);
        Map<Integer, String> inOrder = runParts(f, layout, ranges, digests, List.of(0, 1, 2, 3), "in-order");
        org.apache.hadoop.fs.Path dir = f.store().beginCommit(1);
        Files.writeString(local(new org.apache.hadoop.fs.Path(dir, "_tmp-part-00002-stage0-attempt0-task9")),
                "half a part, left by a killed attempt");
        AveragingTask task = new AveragingTask(new ShippedHadoopConf(STORAGE.conf()), 1,
                f.store().updatesDir(1).toString(), digests, layout, ranges, dir.toString(), FaultPlan.none());
        Map<String, RoundManifest.FileEntry> files = new LinkedHashMap<>();
        Map<Integer, UpdateAverager.KeyStats> byPart = new LinkedHashMap<>();
        for (int part : List.of(3, 1, 1, 0, 2)) {
            AveragedPart p = task.call(List.of(part).iterator()).next();
            assertEquals(inOrder.get(part), p.sha256(), "part " + part + " must be the same bytes in any order");
            files.put(p.file(), new RoundManifest.FileEntry(p.bytes(), p.sha256()));
            byPart.put(part, p.stats());
        }
        List<UpdateAverager.KeyStats> stats = new ArrayList<>(byPart.values());
        Map<String, RoundManifest.FileEntry> sorted = new LinkedHashMap<>();
        files.keySet().stream().sorted().forEach(k -> sorted.put(k, files.get(k)));
        AdapterTensors state = f.store().loadState(f.store().commitPrepared(1, dir, sorted, 16, "plan", "cfg", null));
        UpdateAverager.Averaged driver = DriverSideAveraging.average(STORAGE, f.store(), 1, f.start(), List.of(0, 1, 2));
        assertTrue(state.bitwiseEquals(driver.state()));
        Collections.shuffle(stats, new java.util.Random(3));
        assertEquals(driver.slotSpread(), new UpdateAverager(layout, org.qalora.quant.kernels.KernelPool.shared())
                .measures(stats, 3, driver.totalTokens()).slotSpread(), 0.0, "measures do not depend on part order");
    }

    private static Path local(org.apache.hadoop.fs.Path p) {
        return Path.of(p.toUri().getPath());
    }

    private static Map<Integer, String> runParts(Fixture f, Map<String, long[]> layout, List<List<String>> ranges,
                                                 SegmentDigests[] digests, List<Integer> order, String name) {
        org.apache.hadoop.fs.Path dir = new org.apache.hadoop.fs.Path(f.store().dir(), "_tmp-" + name);
        STORAGE.mkdirs(dir);
        AveragingTask task = new AveragingTask(new ShippedHadoopConf(STORAGE.conf()), 1,
                f.store().updatesDir(1).toString(), digests, layout, ranges, dir.toString(), FaultPlan.none());
        Map<Integer, String> shas = new LinkedHashMap<>();
        for (int part : order) {
            shas.put(part, task.call(List.of(part).iterator()).next().sha256());
        }
        STORAGE.delete(dir);
        return shas;
    }

    @Test
    void aCorruptedTensorOrHeaderIsRefusedNamingSlotFileAndTensorAndNothingIsLeftBehind() throws Exception {
        Fixture f = fixture("corrupt");
        Path slot1 = local(new org.apache.hadoop.fs.Path(f.store().updatesDir(1), CheckpointStore.updateFileName(1)));
        byte[] good = Files.readAllBytes(slot1);
        byte[] bad = good.clone();
        bad[bad.length - 1] ^= 0x01; // the high byte of the last float of the file: the data still parses
        Files.write(slot1, bad);
        ExecutorAveraging.Outcome out = ExecutorAveraging.run(jsc, STORAGE, f.store(), 1, f.start(), f.slots(), 3,
                LOCAL, FaultPlan.none(), "test");
        assertTrue(out.refused());
        assertEquals(1, out.refusals().size(), "only the range holding the last tensor reads the flipped byte");
        AveragedPart refusal = out.refusals().get(0);
        assertEquals(1, refusal.refusedSlot());
        SegmentDigests d = f.slots().get(1).update();
        String lastTensor = d.tensors()[d.tensors().length - 1];
        assertTrue(refusal.refusal().startsWith("slot 1's update ") && refusal.refusal().contains(
                CheckpointStore.updateFileName(1)) && refusal.refusal().contains("tensor '" + lastTensor + "'")
                && refusal.refusal().contains("does not match the CRC32C its task reported"), refusal.refusal());
        try (var files = Files.list(tmp.resolve("corrupt"))) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().startsWith("_tmp-")), "no commit directory left");
        }

        // A header changed in place (a metadata digit: same length, still valid JSON) is refused by every task.
        byte[] header = good.clone();
        int n = (int) java.nio.ByteBuffer.wrap(header, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
        String text = new String(header, 8, n, java.nio.charset.StandardCharsets.ISO_8859_1);
        int at = 8 + text.indexOf("\"target_tokens\":\"") + "\"target_tokens\":\"".length();
        header[at] = (byte) (header[at] == '9' ? '8' : header[at] + 1);
        Files.write(slot1, header);
        ExecutorAveraging.Outcome out2 = ExecutorAveraging.run(jsc, STORAGE, f.store(), 1, f.start(), f.slots(), 3,
                LOCAL, FaultPlan.none(), "test");
        assertEquals(3, out2.refusals().size());
        assertTrue(out2.refusals().get(0).refusal().contains("has a header with CRC32C"), out2.refusals().get(0).refusal());
        assertTrue(out2.refusals().get(0).refusal().contains(CheckpointStore.updateFileName(1)));

        Files.write(slot1, good);
        AdapterTensors state = commit(f, 1, ExecutorAveraging.run(jsc, STORAGE, f.store(), 1, f.start(), f.slots(), 3,
                LOCAL, FaultPlan.none(), "test"));
        assertTrue(state.bitwiseEquals(DriverSideAveraging.average(STORAGE, f.store(), 1, f.start(), List.of(0, 1, 2))
                .state()));
    }

    @Test
    void keyRangesAreBalancedDeterministicAndNeverSplitAModule() {
        Map<String, long[]> layout = new LinkedHashMap<>();
        layout.put("x.lora_A.weight", new long[] {4, 10});
        layout.put("lone", new long[] {1000});
        layout.put("x.lora_B.weight", new long[] {50, 4}); // not next to its A: no cut may fall between them
        for (int i = 0; i < 6; i++) {
            layout.put("m" + i + ".lora_A.weight", new long[] {4, 100});
            layout.put("m" + i + ".lora_B.weight", new long[] {100, 4});
        }
        List<List<String>> three = KeyRanges.split(layout, 3);
        assertEquals(three, KeyRanges.split(new LinkedHashMap<>(layout), 3), "a function of the layout alone");
        assertEquals(3, three.size());
        List<String> all = new ArrayList<>();
        three.forEach(all::addAll);
        assertEquals(new ArrayList<>(layout.keySet()), all, "contiguous, in key order, every key once");
        for (List<String> r : three) {
            for (String k : r) {
                if (k.endsWith("lora_A.weight")) {
                    assertTrue(r.contains(k.replace("lora_A", "lora_B")), k + " and its B must share a range: " + three);
                }
            }
        }
        assertEquals(List.of("x.lora_A.weight", "lone", "x.lora_B.weight"), three.get(0).subList(0, 3));
        assertEquals(1, KeyRanges.split(layout, 1).size());
        assertNotEquals(three, KeyRanges.split(layout, 2));
        assertTrue(KeyRanges.split(layout, 100).size() <= 7, "at most one range per module (and the lone key)");
    }
}
