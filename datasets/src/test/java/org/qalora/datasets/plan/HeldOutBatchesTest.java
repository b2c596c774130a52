package org.qalora.datasets.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class HeldOutBatchesTest {
    @Test
    void everyRecordOnceWithinTheBudgetAndThePartsSplitTheBatches() {
        RecordLengths l = TrainingPlanTest.alpacaLike(777, 9);
        List<PlannedBatch> all = HeldOutBatches.of(l, 2048, "dev");
        long[] seen = all.stream().flatMapToLong(b -> Arrays.stream(b.recordIndices())).sorted().toArray();
        assertEquals(777, seen.length);
        for (int i = 0; i < seen.length; i++) {
            assertEquals(i, seen[i], "every record exactly once");
        }
        for (PlannedBatch b : all) {
            assertTrue((long) b.batchSize() * b.seqLen() <= 2048, b.toString());
        }
        assertEquals(all, HeldOutBatches.of(l, 2048, "dev"), "deterministic");
        List<PlannedBatch> rejoined = new ArrayList<>();
        List<List<PlannedBatch>> parts = List.of(HeldOutBatches.part(all, 0, 3), HeldOutBatches.part(all, 1, 3),
                HeldOutBatches.part(all, 2, 3));
        for (int i = 0; i < all.size(); i++) {
            rejoined.add(parts.get(i % 3).get(i / 3));
        }
        assertEquals(all, rejoined);
        assertEquals(all.size(), parts.stream().mapToInt(List::size).sum());
    }

    @Test
    void aRecordLongerThanTheBudgetIsNamed() {
        RecordLengths l = new RecordLengths(new int[] {10, 300}, new int[] {2, 3});
        var e = assertThrows(IllegalArgumentException.class, () -> HeldOutBatches.of(l, 256, "/data/dev"));
        assertTrue(e.getMessage().contains("held-out record 1 of /data/dev has 300 tokens, more than --micro-batch-tokens 256"),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> HeldOutBatches.part(List.of(), 2, 2));
    }
}
