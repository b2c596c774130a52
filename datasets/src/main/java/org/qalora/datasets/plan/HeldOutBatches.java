package org.qalora.datasets.plan;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.prepare.DatasetManifest;

/**
 * The micro-batches of a held-out (evaluation) dataset: every record exactly once, in record order before
 * {@link MicroBatchPacker} sorts them by length, so the batches are a pure function of the dataset and the token
 * budget. The held-out loss is the sum of token losses over all batches divided by their target tokens (a mean over
 * tokens, not over records), which padding and the split into batches do not change.
 */
public final class HeldOutBatches {
    private HeldOutBatches() {}

    /** Reads manifest.json and lengths.bin of a prepared dataset and packs all of its records. */
    public static List<PlannedBatch> load(String datasetDir, Configuration conf, int maxTokens) throws IOException {
        DatasetManifest m = DatasetManifest.read(datasetDir, conf);
        RecordLengths lengths = RecordLengths.read(m, datasetDir, conf);
        if (lengths.size() == 0) {
            throw new IllegalArgumentException("the held-out dataset " + datasetDir + " has no records");
        }
        return of(lengths, maxTokens, datasetDir);
    }

    /** All records of {@code lengths} packed under {@code maxTokens}; {@code where} names the dataset in errors. */
    public static List<PlannedBatch> of(RecordLengths lengths, int maxTokens, String where) {
        long[] all = new long[lengths.size()];
        for (int i = 0; i < all.length; i++) {
            if (lengths.numTokens()[i] > maxTokens) {
                throw new IllegalArgumentException("held-out record " + i + " of " + where + " has "
                        + lengths.numTokens()[i] + " tokens, more than --micro-batch-tokens " + maxTokens
                        + "; raise --micro-batch-tokens or prepare with smaller --source-max-len/--target-max-len");
            }
            all[i] = i;
        }
        return MicroBatchPacker.pack(all, lengths, maxTokens);
    }

    /** Part {@code part} of {@code parts}: batches {@code part, part + parts, ...} (a fixed split over tasks). */
    public static List<PlannedBatch> part(List<PlannedBatch> batches, int part, int parts) {
        if (parts < 1 || part < 0 || part >= parts) {
            throw new IllegalArgumentException("part " + part + " of " + parts + " does not exist");
        }
        List<PlannedBatch> out = new ArrayList<>();
        for (int i = part; i < batches.size(); i += parts) {
            out.add(batches.get(i));
        }
        return out;
    }
}
