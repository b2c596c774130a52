package org.qalora.datasets.prepare;

import org.qalora.datasets.read.BadRecord;

import java.io.Serializable;
import java.util.List;
import java.util.SortedMap;

/**
 * What one task did with one input file or split.
 *
 * @param shards    shards written, {@code firstRecord} relative to the unit (the driver shifts them)
 * @param lengths   [2 * records]: num_tokens, num_target_tokens per record, interleaved
 * @param firstBad  in stop mode, the record that stopped the file; null otherwise
 * @param fatal     a file-level error (unreadable structure) in either mode; null otherwise
 */
record FileResult(int fileIndex, int splitIndex, String location, String sha256, String layout, String format, long records,
                  long tokens, long targetTokens, SortedMap<String, Long> skipped, List<DatasetManifest.Shard> shards,
                  int[] lengths, BadRecord firstBad, String fatal) implements Serializable {

    long skippedTotal() {
        return skipped.values().stream().mapToLong(Long::longValue).sum();
    }
}
