package org.qalora.datasets.plan;

/**
 * A materialised micro-batch, row-major, right-padded.
 *
 * @param inputIds [B*T] token ids, padding = the dataset's pad id
 * @param labels   [B*T] -100 on the masked source and on padding
 * @param lengths  [B] real (unpadded) length of each row
 */
public record TokenBatch(int batchSize, int seqLen, int[] inputIds, int[] labels, int[] lengths) {
}
