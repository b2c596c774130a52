package org.qalora.datasets.prepare;

import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.read.RecordValidator;
import org.qalora.datasets.tokenize.ExampleEncoder;

import java.io.Serializable;
import java.util.List;

/**
 * Inputs and settings of a prepare run.
 *
 * @param data            input files, directories (their visible files, sorted) or globs, any Hadoop FileSystem
 * @param tokenizer       tokenizer.json; a tokenizer_config.json beside it names BOS / EOS / PAD
 * @param out             output directory; must not exist unless {@code overwrite}
 * @param format          alpaca, flan or auto (per file)
 * @param templateFile    a user template (see {@link org.qalora.datasets.template.TemplateFile}); null for the
 *                        built-ins (Alpaca prompts for Alpaca records, FLAN inputs verbatim)
 * @param stanfordPrompt  Alpaca prompt ends "### Response:" (Stanford) instead of "### Response: " (qa-lora)
 * @param skipBadRecords  skip and count bad records instead of stopping at the first one
 * @param recordsPerShard at most this many records per shard file
 * @param splitBytes      JSONL files larger than this are cut into line-aligned byte ranges of about this size,
 *                        one Spark task each (JSON arrays and Parquet files are one task per file)
 */
public record PrepareSettings(List<String> data, String tokenizer, String out, RecordFormat format,
                              String templateFile, boolean stanfordPrompt, ExampleEncoder.Settings encoding,
                              RecordValidator.Limits limits, boolean skipBadRecords, int recordsPerShard,
                              boolean overwrite, long splitBytes) implements Serializable {

    public static final int DEFAULT_RECORDS_PER_SHARD = 100_000;
    public static final long DEFAULT_SPLIT_BYTES = 64L << 20;

    /** Settings with the default split size. */
    public PrepareSettings(List<String> data, String tokenizer, String out, RecordFormat format, String templateFile,
                           boolean stanfordPrompt, ExampleEncoder.Settings encoding, RecordValidator.Limits limits,
                           boolean skipBadRecords, int recordsPerShard, boolean overwrite) {
        this(data, tokenizer, out, format, templateFile, stanfordPrompt, encoding, limits, skipBadRecords,
                recordsPerShard, overwrite, DEFAULT_SPLIT_BYTES);
    }

    public PrepareSettings {
        data = List.copyOf(data);
        if (data.isEmpty()) {
            throw new IllegalArgumentException("no --data given");
        }
        if (recordsPerShard < 1) {
            throw new IllegalArgumentException("records per shard must be >= 1, got " + recordsPerShard);
        }
        if (splitBytes < 1) {
            throw new IllegalArgumentException("split bytes must be >= 1, got " + splitBytes);
        }
    }

    /** qa-lora's defaults for the given inputs. */
    public static PrepareSettings defaults(List<String> data, String tokenizer, String out) {
        return new PrepareSettings(data, tokenizer, out, RecordFormat.AUTO, null, false, ExampleEncoder.Settings.QALORA,
                RecordValidator.Limits.DEFAULT, false, DEFAULT_RECORDS_PER_SHARD, false);
    }

    public PrepareSettings withSkipBadRecords(boolean skip) {
        return new PrepareSettings(data, tokenizer, out, format, templateFile, stanfordPrompt, encoding, limits, skip,
                recordsPerShard, overwrite, splitBytes);
    }

    public PrepareSettings withOut(String newOut) {
        return new PrepareSettings(data, tokenizer, newOut, format, templateFile, stanfordPrompt, encoding, limits,
                skipBadRecords, recordsPerShard, overwrite, splitBytes);
    }

    public PrepareSettings withRecordsPerShard(int n) {
        return new PrepareSettings(data, tokenizer, out, format, templateFile, stanfordPrompt, encoding, limits,
                skipBadRecords, n, overwrite, splitBytes);
    }

    public PrepareSettings withSplitBytes(long bytes) {
        return new PrepareSettings(data, tokenizer, out, format, templateFile, stanfordPrompt, encoding, limits,
                skipBadRecords, recordsPerShard, overwrite, bytes);
    }
}
