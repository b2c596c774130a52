package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.rounds.RoundMetrics;
import org.qalora.driver.rounds.RoundSettings;
import org.qalora.driver.rounds.TrainingRounds;
import org.qalora.driver.testing.ToyTrainerFactory;

/**
 * The round machinery on real executor JVMs ({@code local-cluster[2,1,1024]}) with checkpoints on a real HDFS,
 * using the fast deterministic toy trainer: tasks get distinct fake GPU addresses, and an executor JVM halted in
 * the middle of a round (after training, before writing its update) is replaced, the task retried, and the result
 * bit-identical to an undisturbed run.
 */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class RoundsOnClusterTest {
    @TempDir
    static Path base;
    private static TestCluster cluster;

    @BeforeAll
    static void start() throws Exception {
        cluster = new TestCluster(base);
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    private TrainingRounds.Result run(JavaSparkContext jsc, String dir, FaultPlan faults) {
        Storage storage = new Storage(jsc.hadoopConfiguration());
        CheckpointStore store = new CheckpointStore(storage, storage.path(cluster.uri(dir)), s -> {});
        return new TrainingRounds(jsc, storage, store, new ToyTrainerFactory(5, "", 0.05f),
                new RoundSettings(3, 2, 2, 11L, "cfg", 2), faults, s -> {}).run();
    }

    @Test
    void anExecutorLostMidRoundIsReplacedAndTheResultDoesNotChange() throws Exception {
        SparkConf conf = cluster.sparkConf("RoundsOnClusterTest");
        TrainingRounds.Result clean;
        TrainingRounds.Result faulty;
        try (JavaSparkContext jsc = TestCluster.start(conf)) {
            clean = run(jsc, "/runs/clean", FaultPlan.none());
            faulty = run(jsc, "/runs/faulty", FaultPlan.parse("halt:2:1"));
        }
        assertTrue(faulty.state().bitwiseEquals(clean.state()), "the retried round must change nothing");
        RoundMetrics round2 = faulty.metrics().get(1);
        assertEquals(3, round2.taskAttempts(), "slot 1 of round 2 ran twice: " + round2);
        Set<String> gpus = new TreeSet<>();
        for (RoundMetrics m : clean.metrics()) {
            for (String d : m.slotDevices()) {
                gpus.add(d.substring(d.indexOf('/') + 1));
            }
        }
        assertTrue(gpus.stream().allMatch(g -> g.startsWith("gpu:")), "tasks read their GPU from TaskContext: " + gpus);
        List<String> seen = new ArrayList<>(gpus);
        assertTrue(seen.size() >= 1, Arrays.toString(clean.metrics().get(0).slotDevices()));
    }
}
