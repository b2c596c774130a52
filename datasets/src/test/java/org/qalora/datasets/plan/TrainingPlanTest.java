package org.qalora.datasets.plan;

import org.junit.jupiter.api.Test;
import org.qalora.datasets.prepare.DatasetManifest;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainingPlanTest {

    /** A manifest for {@code n} records with Alpaca-like lengths (source 40..400, target 5..250 tokens). */
    static RecordLengths alpacaLike(int n, long seed) {
        Random r = new Random(seed);
        int[] tok = new int[n];
        int[] tgt = new int[n];
        for (int i = 0; i < n; i++) {
            tgt[i] = 5 + (int) Math.min(245, Math.abs(r.nextGaussian()) * 80);
            tok[i] = 40 + r.nextInt(360) + tgt[i];
        }
        return new RecordLengths(tok, tgt);
    }

    static DatasetManifest manifest(RecordLengths l, String hash) {
        return new DatasetManifest(DatasetManifest.FORMAT_VERSION, hash, List.of(), null, l.size(),
                Arrays.stream(l.numTokens()).asLongStream().sum(), Arrays.stream(l.numTargetTokens()).asLongStream().sum(),
                new TreeMap<>(), 1, 2, 0, List.of(new DatasetManifest.Shard("part-00000-0000-0000.parquet", 0, l.size(), 0, "")),
                DatasetManifest.LENGTHS, "lengths-" + hash);
    }

    /** 4 slots, K = 3, 16 sequences per step, no length grouping, 2048-token micro-batches. */
    private static final PlanSettings SETTINGS = new PlanSettings(42, 4, 3, 16, 0, 2048);

    private static long[] records(List<PlannedBatch> step) {
        return step.stream().flatMapToLong(b -> Arrays.stream(b.recordIndices())).toArray();
    }

    @Test
    void everySlotGetsKStepsOfBatchSizeRecordsInMicroBatchesWithinTheBudget() {
        RecordLengths l = alpacaLike(3000, 1);
        TrainingPlan plan = TrainingPlan.build(manifest(l, "d"), l, SETTINGS);
        for (int round = 0; round < 5; round++) {
            for (int slot = 0; slot < 4; slot++) {
                List<List<PlannedBatch>> steps = plan.stepsFor(round, slot);
                assertEquals(3, steps.size());
                for (List<PlannedBatch> step : steps) {
                    assertEquals(16, records(step).length, "a step is exactly batch-size sequences");
                    assertTrue(step.size() > 1, "16 records of ~300 tokens need several 2048-token micro-batches");
                    for (PlannedBatch b : step) {
                        assertEquals(b.batchSize(), b.recordIndices().length);
                        assertTrue((long) b.batchSize() * b.seqLen() <= 2048, b.toString());
                        int max = Arrays.stream(b.recordIndices()).mapToInt(i -> l.numTokens()[(int) i]).max().orElseThrow();
                        assertEquals(max, b.seqLen(), "T is the longest record of the batch");
                        assertEquals(Arrays.stream(b.recordIndices()).map(i -> l.numTargetTokens()[(int) i]).sum(),
                                b.targetTokens());
                    }
                }
            }
        }
    }

    @Test
    void aStepIsTheSameRecordsWhateverTheMicroBatchBudget() {
        RecordLengths l = alpacaLike(1000, 5);
        TrainingPlan small = TrainingPlan.build(manifest(l, "d"), l, SETTINGS);
        TrainingPlan large = TrainingPlan.build(manifest(l, "d"), l, new PlanSettings(42, 4, 3, 16, 0, 16384));
        for (int slot = 0; slot < 4; slot++) {
            for (int k = 0; k < 3; k++) {
                long[] a = records(small.stepsFor(2, slot).get(k)), b = records(large.stepsFor(2, slot).get(k));
                Arrays.sort(a);
                Arrays.sort(b);
                assertArrayEquals(a, b);
            }
        }
        assertNotEquals(small.hash(), large.hash(), "the budget is part of the plan");
    }

    @Test
    void sameInputsSamePlanAndHash() {
        RecordLengths l = alpacaLike(2000, 2);
        TrainingPlan a = TrainingPlan.build(manifest(l, "d"), l, SETTINGS);
        TrainingPlan b = TrainingPlan.build(manifest(l, "d"), l, SETTINGS);
        assertEquals(a.hash(), b.hash());
        for (int round : new int[] {7, 0, 3}) {      // any access order gives the same answer
            for (int slot = 0; slot < 4; slot++) {
                assertEquals(a.stepsFor(round, slot), b.stepsFor(round, slot));
            }
        }
        // Later epochs evict early ones from memory; asking again rebuilds exactly the same order.
        long[] first = a.epochOrder(0);
        for (int e = 1; e < 7; e++) {
            a.epochOrder(e);
        }
        assertArrayEquals(first, a.epochOrder(0));
        assertEquals(b.stepsFor(0, 1), a.stepsFor(0, 1));
        TrainingPlan otherSeed = TrainingPlan.build(manifest(l, "d"), l, new PlanSettings(43, 4, 3, 16, 0, 2048));
        assertNotEquals(a.hash(), otherSeed.hash());
        assertNotEquals(a.stepsFor(0, 0), otherSeed.stepsFor(0, 0));
        assertNotEquals(a.hash(), TrainingPlan.build(manifest(l, "other-data"), l, SETTINGS).hash());
        assertNotEquals(a.hash(), TrainingPlan.build(manifest(l, "d"), l, new PlanSettings(42, 4, 3, 16, 64, 2048)).hash());
    }

    /**
     * Golden values: the plan must not change across JVMs or refactorings (the checkpoint records the hash). They
     * were computed by an independent Python re-implementation of the algorithm described in {@link TrainingPlan}
     * (SplitMix64, Fisher-Yates, stable length sort per mega-batch, steps of the record stream, LPT assignment,
     * greedy packing of each step), not by this code.
     */
    @Test
    void hashAndFirstStepsAreStable() {
        int n = 50;
        int[] tok = new int[n];
        int[] tgt = new int[n];
        for (int i = 0; i < n; i++) {
            tok[i] = 10 + (i * 37) % 90;
            tgt[i] = 1 + (i * 13) % 20;
        }
        RecordLengths l = new RecordLengths(tok, tgt);
        TrainingPlan p = TrainingPlan.build(manifest(l, "golden"), l, new PlanSettings(7, 2, 2, 8, 0, 256));
        assertEquals("b2fab0a5e053075689cc07da4c01ef21bd840fe689a8d1478083e7311675ebd6", p.hash());
        assertArrayEquals(new long[] {49, 32, 34, 27, 18, 39, 44, 19, 0, 15, 7, 23},
                Arrays.copyOf(p.epochOrder(0), 12));
        assertEquals(List.of(new PlannedBatch(2, 98, new long[] {34, 19}, 11),
                new PlannedBatch(5, 46, new long[] {18, 32, 49, 27, 44}, 75),
                new PlannedBatch(1, 13, new long[] {39}, 8)), p.stepsFor(0, 0).get(0));
        assertEquals(List.of(new PlannedBatch(2, 93, new long[] {29, 31}, 22),
                new PlannedBatch(3, 72, new long[] {26, 43, 28}, 44),
                new PlannedBatch(3, 45, new long[] {35, 37, 5}, 24)), p.stepsFor(0, 1).get(1));
        // round 3 straddles epochs 0 and 1 (50 records, 32 per round)
        assertEquals(List.of(new PlannedBatch(2, 99, new long[] {17, 46}, 21),
                new PlannedBatch(3, 67, new long[] {21, 45, 23}, 40),
                new PlannedBatch(3, 34, new long[] {42, 15, 10}, 34)), p.stepsFor(3, 1).get(1));

        TrainingPlan g = TrainingPlan.build(manifest(l, "golden"), l, new PlanSettings(7, 2, 2, 8, 24, 256));
        assertEquals("db52a68db0191397a9d64845eaddcea1a50fae47b298aac4bfd3e19fc3942dee", g.hash());
        assertArrayEquals(new long[] {17, 34, 12, 7, 24, 19, 36, 14, 4, 16, 45, 23}, Arrays.copyOf(g.epochOrder(0), 12));
        assertEquals(List.of(new PlannedBatch(8, 25, new long[] {15, 32, 49, 27, 44, 22, 39, 0}, 92)),
                g.stepsFor(0, 1).get(1));
    }

    @Test
    void oneEpochCoversEveryRecordOnceAndTheNextReshuffles() {
        RecordLengths l = alpacaLike(1500, 3);
        TrainingPlan plan = TrainingPlan.build(manifest(l, "d"), l, SETTINGS);
        long[] epoch0 = plan.epochOrder(0), epoch1 = plan.epochOrder(1);
        assertEquals(1500, Arrays.stream(epoch0).distinct().count());
        long[] s0 = epoch0.clone(), s1 = epoch1.clone();
        Arrays.sort(s0);
        Arrays.sort(s1);
        assertArrayEquals(s0, s1);
        assertTrue(!Arrays.equals(epoch0, epoch1), "a new epoch reshuffles");

        // The rounds of the first epoch hand out exactly epoch 0's records (plus the start of epoch 1).
        int rounds = plan.roundsFor(1);
        assertEquals((1500 + 191) / 192, rounds, "192 records per round");
        Set<Long> seen = new HashSet<>();
        long total = 0;
        for (int r = 0; r < rounds; r++) {
            for (int s = 0; s < 4; s++) {
                for (List<PlannedBatch> step : plan.stepsFor(r, s)) {
                    for (long i : records(step)) {
                        seen.add(i);
                        total++;
                    }
                }
            }
        }
        assertEquals(1500, seen.size());
        assertEquals((long) rounds * 192, total);
        assertEquals(0, plan.epochOf(0));
        assertEquals(1, plan.epochOf(rounds));
    }

    /**
     * Length grouping makes steps length-homogeneous (what pads least, and what shows a step few kinds of record when
     * length tracks the task); off, a step is a random sample of the data.
     */
    @Test
    void lengthGroupingMakesStepsOfSimilarLengthAndOffDoesNot() {
        RecordLengths l = alpacaLike(4096, 6);
        double off = meanLengthRange(TrainingPlan.build(manifest(l, "d"), l, new PlanSettings(1, 2, 4, 32, 0, 16384)), l);
        double grouped = meanLengthRange(TrainingPlan.build(manifest(l, "d"), l,
                new PlanSettings(1, 2, 4, 32, 1024, 16384)), l);
        System.out.printf("mean (longest - shortest) tokens within a step of 32: off %.1f, mega-batches of 1024 %.1f%n",
                off, grouped);
        assertTrue(off > 250, "random steps span most of the 40..650 range: " + off);
        assertTrue(grouped < off / 5, "grouped steps are narrow: " + grouped + " vs " + off);
    }

    private static double meanLengthRange(TrainingPlan plan, RecordLengths l) {
        double sum = 0;
        int steps = 0;
        for (int r = 0; r < 8; r++) {
            for (int s = 0; s < 2; s++) {
                for (List<PlannedBatch> step : plan.stepsFor(r, s)) {
                    int[] len = Arrays.stream(records(step)).mapToInt(i -> l.numTokens()[(int) i]).toArray();
                    sum += Arrays.stream(len).max().orElseThrow() - Arrays.stream(len).min().orElseThrow();
                    steps++;
                }
            }
        }
        return sum / steps;
    }

    /** Greedy longest-first assignment of steps to slots vs. dealing them round-robin. */
    @Test
    void slotsAreBalancedByTargetTokens() {
        RecordLengths l = alpacaLike(20000, 4);
        PlanSettings s = new PlanSettings(1, 8, 4, 32, 0, 4096);
        TrainingPlan plan = TrainingPlan.build(manifest(l, "d"), l, s);
        double worst = 0;
        double worstRoundRobin = 0;
        for (int round = 0; round < 10; round++) {
            worst = Math.max(worst, plan.imbalance(round));
            // the same steps dealt in stream order, for comparison
            long[] rr = new long[8];
            for (int i = 0; i < s.stepsPerRoundAllSlots(); i++) {
                for (long r : plan.stepRecords((long) round * s.stepsPerRoundAllSlots() + i)) {
                    rr[i % 8] += l.numTargetTokens()[(int) r];
                }
            }
            worstRoundRobin = Math.max(worstRoundRobin, Arrays.stream(rr).max().orElseThrow()
                    / Arrays.stream(rr).average().orElseThrow());
        }
        System.out.printf("plan balance over 10 rounds (8 slots, K=4, 32 sequences per step): max/mean target tokens "
                + "greedy %.4f, round-robin %.4f%n", worst, worstRoundRobin);
        assertTrue(worst < 1.03, "greedy imbalance " + worst);
        assertTrue(worst < worstRoundRobin, "greedy beats round-robin");
    }

    @Test
    void clearErrors() {
        RecordLengths three = new RecordLengths(new int[] {10, 20, 30}, new int[] {1, 2, 3});
        var e = assertThrows(IllegalArgumentException.class,
                () -> TrainingPlan.build(manifest(three, "d"), three, new PlanSettings(1, 1, 1, 4, 0, 100)));
        assertTrue(e.getMessage().contains("3 records") && e.getMessage().contains("batch-size is 4"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> TrainingPlan.build(manifest(three, "d"), three, new PlanSettings(1, 1, 1, 1, 0, 25)));
        assertTrue(e.getMessage().contains("record 2 has 30 tokens"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PlanSettings(1, 1, 1, 32, 32, 100));
        assertTrue(e.getMessage().contains("group-by-length 32 is not larger than batch-size 32"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PlanSettings(1, 1, 1, 32, -1, 100));
        assertTrue(e.getMessage().contains("group-by-length must be 0 (off)"), e.getMessage());
    }
}
