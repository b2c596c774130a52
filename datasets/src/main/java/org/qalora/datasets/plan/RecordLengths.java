package org.qalora.datasets.plan;

import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.prepare.DatasetManifest;

import java.io.IOException;

/**
 * Per-record lengths of a prepared dataset, all a plan needs besides the manifest.
 *
 * @param numTokens       [N] source + target tokens of record i
 * @param numTargetTokens [N] loss tokens of record i
 */
public record RecordLengths(int[] numTokens, int[] numTargetTokens) {
    public RecordLengths {
        if (numTokens.length != numTargetTokens.length) {
            throw new IllegalArgumentException("length arrays differ: " + numTokens.length + " vs "
                    + numTargetTokens.length);
        }
    }

    public int size() {
        return numTokens.length;
    }

    /** Reads {@code DIR/lengths.bin}, checked against the manifest. */
    public static RecordLengths read(DatasetManifest manifest, String datasetDir, Configuration conf) throws IOException {
        int[][] l = manifest.readLengths(datasetDir, conf);
        return new RecordLengths(l[0], l[1]);
    }
}
