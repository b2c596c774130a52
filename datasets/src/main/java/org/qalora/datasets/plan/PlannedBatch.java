package org.qalora.datasets.plan;

import java.io.Serializable;
import java.util.Arrays;

/**
 * One micro-batch: {@code batchSize} records right-padded to {@code seqLen} (the longest of them).
 *
 * @param recordIndices [batchSize] dataset record numbers (see {@link org.qalora.datasets.prepare.DatasetManifest})
 * @param targetTokens  labels that are not -100 in this micro-batch (what the loss averages over)
 */
public record PlannedBatch(int batchSize, int seqLen, long[] recordIndices, long targetTokens) implements Serializable {

    @Override
    public boolean equals(Object o) {
        return o instanceof PlannedBatch(int b, int t, long[] r, long tt)
                && b == batchSize && t == seqLen && tt == targetTokens && Arrays.equals(r, recordIndices);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * (31 * batchSize + seqLen) + Long.hashCode(targetTokens)) + Arrays.hashCode(recordIndices);
    }

    @Override
    public String toString() {
        return "PlannedBatch[B=" + batchSize + ", T=" + seqLen + ", targetTokens=" + targetTokens + ", records="
                + Arrays.toString(recordIndices) + "]";
    }
}
