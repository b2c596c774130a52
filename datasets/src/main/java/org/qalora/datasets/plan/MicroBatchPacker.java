package org.qalora.datasets.plan;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Splits a set of records into right-padded micro-batches under a token budget: records sorted longest first (ties
 * keep their given order), then packed greedily: the first record of a micro-batch fixes its T (its length), and
 * records are added while {@code (B+1) * T <= maxTokens}. Sorting first keeps the padding small; the result is a
 * pure function of the inputs.
 */
public final class MicroBatchPacker {
    private MicroBatchPacker() {}

    /**
     * @param records   [n] record indices, in the order ties keep
     * @param lengths   the dataset's lengths (tokens and target tokens per record)
     * @param maxTokens B*T budget of one micro-batch, padding included; every record must fit on its own
     */
    public static List<PlannedBatch> pack(long[] records, RecordLengths lengths, int maxTokens) {
        int[] len = lengths.numTokens();
        int[] tgt = lengths.numTargetTokens();
        Long[] sorted = new Long[records.length];
        for (int i = 0; i < records.length; i++) {
            sorted[i] = records[i];
        }
        // longest first; equal lengths keep their given order (Arrays.sort on objects is stable)
        Arrays.sort(sorted, (a, b) -> Integer.compare(len[(int) (long) b], len[(int) (long) a]));
        List<PlannedBatch> out = new ArrayList<>();
        int i = 0;
        while (i < sorted.length) {
            int seqLen = len[(int) (long) sorted[i]];
            if (seqLen > maxTokens) {
                throw new IllegalArgumentException("record " + sorted[i] + " has " + seqLen + " tokens, more than the "
                        + "micro-batch budget of " + maxTokens);
            }
            int b = Math.max(1, Math.min(maxTokens / seqLen, sorted.length - i));
            long[] idx = new long[b];
            long targets = 0;
            for (int j = 0; j < b; j++) {
                idx[j] = sorted[i + j];
                targets += tgt[(int) idx[j]];
            }
            out.add(new PlannedBatch(b, seqLen, idx, targets));
            i += b;
        }
        return out;
    }
}
