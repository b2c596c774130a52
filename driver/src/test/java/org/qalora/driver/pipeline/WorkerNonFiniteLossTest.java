package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.plan.PlanSettings;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.rounds.FaultPlan;
import org.qalora.driver.rounds.RoundFailedException;
import org.qalora.driver.rounds.RoundSettings;
import org.qalora.driver.rounds.SlotTrainer;
import org.qalora.driver.rounds.SlotTrainerFactory;
import org.qalora.driver.rounds.TrainingRounds;
import org.qalora.driver.shard.ShardJob;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.driver.state.AdapterTensors;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;

/**
 * A NaN reaching the REAL worker trainer (not the toy one): the worker's {@code NonFiniteLossException} must fail
 * the round with a message naming round, slot and step, and the last committed round must stay the latest.
 */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class WorkerNonFiniteLossTest {
    // Cleaned here, not by JUnit: when the NaN slot fails the round, the other slot's task may still be writing its
    // update after spark.stop() returns, and JUnit's one-shot delete then fails on a directory that is not yet empty.
    @TempDir(cleanup = org.junit.jupiter.api.io.CleanupMode.NEVER)
    Path dir;

    @org.junit.jupiter.api.AfterEach
    void deleteOnceTheCancelledTaskHasStopped() throws Exception {
        for (int attempt = 0; ; attempt++) {
            try (var paths = java.nio.file.Files.walk(dir)) {
                for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    java.nio.file.Files.deleteIfExists(p);
                }
                return;
            } catch (java.io.IOException | java.io.UncheckedIOException e) {
                if (attempt == 40) {
                    throw e;
                }
                Thread.sleep(250);
            }
        }
    }

    /**
     * The real factory, except that one slot of one round starts from a state with a NaN Adam moment. (A NaN
     * weight is refused up front by the worker; a NaN moment passes, turns the weights NaN in the first update and
     * so makes the second step's loss NaN, which is what a diverging run looks like.)
     */
    private record PoisonedStart(WorkerTrainerFactory inner, int round, int slot) implements SlotTrainerFactory {
        @Override
        public String identity() { return "poisoned(" + round + "," + slot + "):" + inner.identity(); }

        @Override
        public String planHash() { return inner.planHash(); }

        @Override
        public AdapterTensors initialState(long seed) { return inner.initialState(seed); }

        @Override
        public SlotTrainer open(String device) {
            SlotTrainer real = inner.open(device);
            return new SlotTrainer() {
                @Override
                public SlotOutcome train(org.qalora.driver.rounds.SlotAssignment a, AdapterTensors start) {
                    return real.train(a, a.round() == round && a.slot() == slot ? withNaN(start) : start);
                }

                @Override
                public EvalOutcome evaluate(AdapterTensors state, int part, int parts) {
                    return real.evaluate(state, part, parts);
                }
            };
        }

        private static AdapterTensors withNaN(AdapterTensors start) {
            Map<String, AdapterTensors.Tensor> copy = new LinkedHashMap<>();
            for (String k : start.keys()) {
                AdapterTensors.Tensor t = start.tensor(k);
                copy.put(k, new AdapterTensors.Tensor(t.shape(), t.weights(), t.adamM().clone(), t.adamV()));
            }
            copy.get(start.keys().get(1)).adamM()[0] = Float.NaN; // a B matrix of layer 0: every output sees it
            return new AdapterTensors(copy, start.step());
        }
    }

    @Test
    void aNaNInTheRealTrainerFailsTheRoundNamingSlotAndStepAndKeepsTheLastRound() throws Exception {
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2]", "WorkerNonFiniteLossTest")
                .set("spark.ui.enabled", "false");
        SparkSession spark = SparkSession.builder().config(conf).getOrCreate();
        try {
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            Configuration hadoop = jsc.hadoopConfiguration();
            HadoopPaths paths = new HadoopPaths(hadoop);
            List<String> log = new ArrayList<>();
            Path repo = Fixtures.root().getParent();
            String runDir = dir.resolve("run").toString();
            ShardJob quantizeTasks = new ShardJob(jsc, new Storage(hadoop), FaultPlan.none(), 1, log::add);
            ModelStage.Resolved model = new ModelStage(paths, quantizeTasks, 5_000_000_000L, log::add).resolve(null, null,
                    true, 4, 32, 42L, runDir, repo);
            String data = new DataStage(paths, log::add).resolve(spark, DataStage.Kind.TRAIN,
                    List.of(repo.resolve("samples/alpaca-sample.json").toString()), model.tokenizer(), "auto", runDir);
            WorkerTrainerFactory real = new WorkerTrainerFactory(model.baseModel(), data, null,
                    new PlanSettings(42L, 2, 2, 2, 0, 256), QaloraConfig.allProjections(4, 8.0,
                    model.config().quantization().groupSize(), Pooling.MEAN, 0.0), null, 4, 1, new ShippedHadoopConf(hadoop),
                    "cpu", null, false);

            Storage storage = new Storage(hadoop);
            CheckpointStore store = new CheckpointStore(storage, storage.path(dir.resolve("ckpt").toString()), log::add);
            RoundSettings settings = new RoundSettings(2, 2, 2, 42L, "cfg-nan", 2, 0);
            TrainingRounds rounds = new TrainingRounds(jsc, storage, store, new PoisonedStart(real, 2, 1), settings,
                    FaultPlan.none(), log::add);

            RoundFailedException e = assertThrows(RoundFailedException.class, rounds::run);
            assertTrue(e.getMessage().contains("round 2 failed: non-finite loss NaN in round 2, slot 1, local step 1 "
                    + "(global step 4)"), e.getMessage());
            assertTrue(e.getMessage().contains("last committed round 1"), e.getMessage());
            assertEquals(1, store.latestCommitted().orElseThrow().round());
        } finally {
            spark.stop();
        }
    }
}
