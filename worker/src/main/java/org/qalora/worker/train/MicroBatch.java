package org.qalora.worker.train;

/**
 * One micro-batch: {@code batchSize} right-padded sequences of {@code seqLen} tokens, row-major {@code [B, T]}.
 * {@code labels} are -100 on padding and on source (prompt) tokens. Padding needs no attention mask: attention is
 * causal, so real tokens (which come first) never see the padding after them.
 */
public record MicroBatch(int batchSize, int seqLen, int[] inputIds, int[] labels) implements java.io.Serializable {
    public MicroBatch {
        if (batchSize <= 0 || seqLen <= 0) {
            throw new IllegalArgumentException("micro-batch shape must be positive, got " + batchSize + " x " + seqLen);
        }
        if (inputIds.length != (long) batchSize * seqLen) {
            throw new IllegalArgumentException("micro-batch input_ids has " + inputIds.length + " ids, expected "
                    + batchSize + " x " + seqLen);
        }
        if (labels.length != inputIds.length) {
            throw new IllegalArgumentException("micro-batch labels has " + labels.length + " entries, expected "
                    + batchSize + " x " + seqLen);
        }
    }
}
