package org.qalora.worker.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.merge.MergeCheck;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.TinyModels;

class LocalTrainerTest {
    private static final CpuBackend BE = new CpuBackend(2);
    private static final LlamaDims DIMS = TinyModels.dims(48, 64, 96, 2, 4, 2);
    private static final LlamaModel MODEL = TinyModels.random(BE, DIMS, 4, 32, 31);
    private static final QaloraConfig CFG = QaloraConfig.allProjections(4, 8, 32, Pooling.MEAN, 0.1);

    @AfterAll
    static void close() { BE.close(); }

    private static MicroBatch batch(SplittableRandom rng, int b, int t) {
        int[] ids = TinyModels.ids(rng, b * t, DIMS.vocab());
        int[] labels = ids.clone();
        for (int row = 0; row < b; row++) {
            labels[row * t] = -100; // source token
            labels[row * t + t - 1] = -100; // padding
        }
        return new MicroBatch(b, t, ids, labels);
    }

    private static MicroBatch concat(MicroBatch x, MicroBatch y) {
        int[] ids = Arrays.copyOf(x.inputIds(), x.inputIds().length + y.inputIds().length);
        System.arraycopy(y.inputIds(), 0, ids, x.inputIds().length, y.inputIds().length);
        int[] labels = Arrays.copyOf(x.labels(), x.labels().length + y.labels().length);
        System.arraycopy(y.labels(), 0, labels, x.labels().length, y.labels().length);
        return new MicroBatch(x.batchSize() + y.batchSize(), x.seqLen(), ids, labels);
    }

    @Test
    void lossFallsAndRunsAreBitIdentical() {
        SplittableRandom rng = new SplittableRandom(1);
        MicroBatch mb = batch(rng, 2, 10);
        List<List<MicroBatch>> steps = List.of(List.of(mb), List.of(mb), List.of(mb), List.of(mb), List.of(mb));
        TrainingConfig tc = TrainingConfig.defaults(Pooling.MEAN, 5).withLearningRate(1e-2);
        AdapterState start = AdapterState.initial(MODEL, CFG, 7);
        TrainResult r1 = new LocalTrainer(MODEL, CFG, tc).run(start, steps, 3);
        TrainResult r2 = new LocalTrainer(MODEL, CFG, tc.withRecompute(true)).run(start, steps, 3);
        assertEquals(5, r1.steps());
        assertEquals(5, r1.state().step());
        assertTrue(r1.stepLosses()[4] < r1.stepLosses()[0] - 0.05, Arrays.toString(r1.stepLosses()));
        // per row: 10 positions, the last predicts nothing, the one predicting the masked last label is ignored
        assertEquals(5L * 2 * 8, r1.targetTokens());
        for (String key : r1.state().keys()) {
            assertArrayEquals(r1.state().weights(key), r2.state().weights(key), 0f, key);
            assertArrayEquals(r1.state().adamV(key), r2.state().adamV(key), 0f, key);
        }
        assertArrayEquals(r1.stepLosses(), r2.stepLosses(), 0.0);
    }

    /**
     * Training a handed-over state keeps no copy of it: on the CPU the trainer trains in the start's own arrays and
     * returns them as the result (0 copies of weights, m and v, where {@link LocalTrainer#run} makes one for the
     * trainer and one for the result), with the numbers {@code run} gives, bit for bit.
     */
    @Test
    void aHandedOverStartIsTrainedInPlaceAndReturnedBitIdentical() {
        SplittableRandom rng = new SplittableRandom(8);
        MicroBatch mb = batch(rng, 2, 10);
        List<List<MicroBatch>> steps = List.of(List.of(mb), List.of(mb));
        TrainingConfig tc = TrainingConfig.defaults(Pooling.MEAN, 2).withLearningRate(1e-2);
        AdapterState start = new LocalTrainer(MODEL, CFG, tc).run(AdapterState.initial(MODEL, CFG, 7),
                List.of(List.of(mb)), 3).state(); // non-zero moments
        AdapterState handed = AdapterState.of(DIMS, CFG, start.weightMap(), start.adamMMap(), start.adamVMap(),
                start.step());
        TrainResult copied = new LocalTrainer(MODEL, CFG, tc).run(start, steps, 5);
        TrainResult consumed = new LocalTrainer(MODEL, CFG, tc).runConsuming(handed, steps, 5);
        assertEquals(copied.state().step(), consumed.state().step());
        assertArrayEquals(copied.stepLosses(), consumed.stepLosses(), 0.0);
        int arrays = 0;
        for (String key : start.keys()) {
            assertArrayEquals(copied.state().weights(key), consumed.state().weights(key), 0f, key);
            assertArrayEquals(copied.state().adamM(key), consumed.state().adamM(key), 0f, key);
            assertArrayEquals(copied.state().adamV(key), consumed.state().adamV(key), 0f, key);
            assertSame(handed.weights(key), consumed.state().weights(key), key);
            assertSame(handed.adamM(key), consumed.state().adamM(key), key);
            assertSame(handed.adamV(key), consumed.state().adamV(key), key);
            assertNotSame(start.weights(key), copied.state().weights(key), "run leaves the caller's state alone");
            arrays += 3;
        }
        assertEquals(2 * 7 * 2 * 3, arrays, "every tensor of both layers checked");
    }

    @Test
    void resultsDoNotDependOnTheThreadCount() {
        SplittableRandom rng = new SplittableRandom(4);
        MicroBatch a = batch(rng, 2, 9), b = batch(rng, 1, 12);
        TrainingConfig tc = TrainingConfig.defaults(Pooling.MEAN, 2);
        try (CpuBackend one = new CpuBackend(1); CpuBackend three = new CpuBackend(3)) {
            LlamaModel m1 = TinyModels.random(one, DIMS, 4, 32, 31), m3 = TinyModels.random(three, DIMS, 4, 32, 31);
            AdapterState start = AdapterState.initial(m1, CFG, 7);
            TrainResult r1 = new LocalTrainer(m1, CFG, tc).run(start, List.of(List.of(a, b), List.of(b)), 5);
            TrainResult r3 = new LocalTrainer(m3, CFG, tc).run(start, List.of(List.of(a, b), List.of(b)), 5);
            for (String key : r1.state().keys()) {
                assertArrayEquals(r1.state().weights(key), r3.state().weights(key), 0f, key);
            }
            assertArrayEquals(r1.stepLosses(), r3.stepLosses(), 0.0);
        }
    }

    @Test
    void accumulatingMicroBatchesEqualsOneBigBatch() {
        SplittableRandom rng = new SplittableRandom(2);
        MicroBatch a = batch(rng, 1, 8), b = batch(rng, 2, 8);
        QaloraConfig noDropout = QaloraConfig.allProjections(4, 8, 32, Pooling.SUM, 0.0);
        TrainingConfig tc = TrainingConfig.defaults(Pooling.SUM, 1);
        AdapterState start = AdapterState.initial(MODEL, noDropout, 9);
        // one step first so that B != 0 and both A and B receive gradients
        start = new LocalTrainer(MODEL, noDropout, tc).run(start, List.of(List.of(concat(a, b))), 1).state();
        TrainResult split = new LocalTrainer(MODEL, noDropout, tc).run(start, List.of(List.of(a, b)), 1);
        TrainResult whole = new LocalTrainer(MODEL, noDropout, tc).run(start, List.of(List.of(concat(a, b))), 1);
        assertEquals(whole.lossSum(), split.lossSum(), 1e-4);
        assertEquals(whole.targetTokens(), split.targetTokens());
        for (String key : whole.state().keys()) {
            assertTrue(MergeCheck.relativeError(split.state().adamM(key), whole.state().adamM(key)) < 1e-4, key);
        }
    }

    @Test
    void nonFiniteLossNamesTheStep() {
        SplittableRandom rng = new SplittableRandom(3);
        MicroBatch mb = batch(rng, 1, 8);
        TrainingConfig huge = new TrainingConfig(1e30, 0.9, 0.999, 1e-8, 0, 0, Schedule.CONSTANT, 0, 3, false);
        AdapterState start = AdapterState.initial(MODEL, CFG, 1);
        NonFiniteLossException e = assertThrows(NonFiniteLossException.class,
                () -> new LocalTrainer(MODEL, CFG, huge).run(start, List.of(List.of(mb), List.of(mb), List.of(mb)), 1));
        assertEquals(2, e.step()); // step 1 (B = 0) is finite and moves B by ~1e30; step 2's forward overflows
        assertTrue(e.getMessage().contains("global step 2"), e.getMessage());
        assertTrue(e.what().startsWith("loss ") || e.what().startsWith("gradient norm "), e.what());
    }

    @Test
    void clippingScalesTheGradientLikeClipGradNorm() {
        SplittableRandom rng = new SplittableRandom(6);
        MicroBatch mb = batch(rng, 2, 8);
        QaloraConfig noDropout = QaloraConfig.allProjections(4, 8, 32, Pooling.MEAN, 0.0);
        AdapterState start = AdapterState.initial(MODEL, noDropout, 2);
        TrainingConfig plain = new TrainingConfig(1e-3, 0.9, 0.999, 1e-8, 0, 0, Schedule.CONSTANT, 0, 1, false);
        TrainingConfig clipped = new TrainingConfig(1e-3, 0.9, 0.999, 1e-8, 0, 1e-3, Schedule.CONSTANT, 0, 1, false);
        TrainResult a = new LocalTrainer(MODEL, noDropout, plain).run(start, List.of(List.of(mb)), 1);
        TrainResult b = new LocalTrainer(MODEL, noDropout, clipped).run(start, List.of(List.of(mb)), 1);
        // after one step m = (1 - beta1) g, so m recovers the (clipped) gradient
        double norm = 0;
        for (String key : a.state().keys()) {
            for (float m : a.state().adamM(key)) {
                norm += (double) (m / 0.1) * (m / 0.1);
            }
        }
        norm = Math.sqrt(norm);
        assertTrue(norm > 1e-3, "the test needs a gradient norm above the clip, got " + norm);
        double coef = 1e-3 / (norm + 1e-6);
        for (String key : a.state().keys()) {
            float[] ma = a.state().adamM(key), mb2 = b.state().adamM(key);
            for (int i = 0; i < ma.length; i++) {
                assertEquals(ma[i] * coef, mb2[i], 1e-6 * Math.abs(ma[i]) + 1e-12, key);
            }
        }
    }

    @Test
    void schedulesFollowHfSemantics() {
        assertEquals(0.0, Schedule.LINEAR.multiplier(0, 2, 10));
        assertEquals(0.5, Schedule.LINEAR.multiplier(1, 2, 10));
        assertEquals(1.0, Schedule.LINEAR.multiplier(2, 2, 10));
        assertEquals(0.5, Schedule.LINEAR.multiplier(6, 2, 10));
        assertEquals(0.5, Schedule.COSINE.multiplier(6, 2, 10), 1e-12);
        assertEquals(1.0, Schedule.CONSTANT.multiplier(100, 2, 10));
        assertEquals(1e-3, TrainingConfig.defaultLearningRate(Pooling.MEAN), 1e-12);
        assertEquals(2e-4, TrainingConfig.defaultLearningRate(Pooling.SUM), 1e-12);
    }

    /**
     * A warm-started run ({@code scheduleStart}): global step {@code start + s} takes the rate of step s of a fresh
     * schedule over the run's own steps, warmup included, while the step count (Adam's bias correction) goes on.
     */
    @Test
    void aScheduleStartShiftsWarmupAndDecayToTheWarmStartsStep() {
        TrainingConfig fresh = TrainingConfig.defaults(Pooling.MEAN, 10).withSchedule(Schedule.COSINE, 2);
        TrainingConfig warm = fresh.withScheduleStart(40);
        for (long s = 0; s < 10; s++) {
            assertEquals(fresh.learningRateAt(s), warm.learningRateAt(40 + s), 0.0, "step " + s);
        }
        assertEquals(0.0, warm.learningRateAt(40), "the warmup restarts at the warm start");
        assertEquals(fresh.learningRate(), fresh.withScheduleStart(0).learningRateAt(2), 0.0);
        assertThrows(IllegalArgumentException.class, () -> fresh.withScheduleStart(-1));
    }
}
