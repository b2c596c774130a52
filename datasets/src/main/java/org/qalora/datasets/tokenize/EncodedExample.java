package org.qalora.datasets.tokenize;

/**
 * One training sequence: the source followed by the target.
 *
 * @param inputIds         [S + T] BOS + source ids, then target ids (ending with EOS unless truncated away)
 * @param labels           [S + T] -100 on the source (unless trained on), the target ids on the target
 * @param numTargetTokens  number of labels that are not -100 (the tokens the loss is taken over)
 */
public record EncodedExample(int[] inputIds, int[] labels, int numTargetTokens) {
    /** The label value that cross-entropy ignores (PyTorch's ignore_index). */
    public static final int IGNORE = -100;

    public int numTokens() {
        return inputIds.length;
    }
}
