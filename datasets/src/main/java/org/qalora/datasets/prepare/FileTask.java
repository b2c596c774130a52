package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.qalora.datasets.read.BadRecord;
import org.qalora.datasets.read.BadRecordReason;
import org.qalora.datasets.read.JsonArrayReader;
import org.qalora.datasets.read.MalformedFileException;
import org.qalora.datasets.read.ParquetRecordReader;
import org.qalora.datasets.read.ReadResult;
import org.qalora.datasets.read.RecordReader;
import org.qalora.datasets.read.RecordReaders;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.template.PromptTemplate;
import org.qalora.datasets.template.VerbatimTemplate;
import org.qalora.datasets.tokenize.EncodedExample;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.quant.io.ShippedHadoopConf;

import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The work of one Spark task: read one input file (or one split of a large JSONL file), validate, template,
 * tokenize, and write its shards ({@code part-FFFFF-SSSS-CCCC.parquet}: file, split and chunk index) into the
 * job's temporary directory.
 * It uses no Spark API: {@link PrepareJob} runs one per input file inside a task and collects the results.
 */
final class FileTask implements Serializable {

    private final PrepareSettings settings;
    private final byte[] tokenizerJson;
    private final byte[] tokenizerConfig;     // may be null
    private final PromptTemplate userTemplate; // may be null
    private final ShippedHadoopConf conf;

    FileTask(PrepareSettings settings, byte[] tokenizerJson, byte[] tokenizerConfig, PromptTemplate userTemplate,
             Configuration conf) {
        this.settings = settings;
        this.tokenizerJson = tokenizerJson;
        this.tokenizerConfig = tokenizerConfig;
        this.userTemplate = userTemplate;
        this.conf = new ShippedHadoopConf(conf);
    }

    FileResult run(InputUnit unit, String tmpDir) throws IOException {
        int fileIndex = unit.fileIndex();
        String location = unit.location();
        Configuration hadoop = conf.get();
        TextTokenizer tokenizer = TextTokenizer.shared(tokenizerJson, tokenizerConfig, settings.tokenizer());
        ExampleEncoder encoder = new ExampleEncoder(tokenizer, settings.encoding());
        PromptTemplate alpaca = settings.stanfordPrompt() ? AlpacaTemplate.STANFORD : AlpacaTemplate.QALORA;
        PromptTemplate verbatim = new VerbatimTemplate();
        Path dir = new Path(tmpDir);
        FileSystem fs = dir.getFileSystem(hadoop);

        SortedMap<String, Long> skipped = new TreeMap<>();
        for (BadRecordReason r : BadRecordReason.values()) {
            skipped.put(r.name(), 0L);
        }
        Output output = new Output(fs, dir, String.format("part-%05d-%04d", fileIndex, unit.splitIndex()), hadoop);
        String layout = "?";
        String format = null;
        try (RecordReader reader = unit.isWholeFile()
                ? RecordReaders.open(location, hadoop, settings.format(), settings.limits())
                : RecordReaders.openJsonLinesRange(location, hadoop, settings.format(), settings.limits(), unit.start(),
                        unit.end(), unit.firstLine())) {
            layout = reader instanceof ParquetRecordReader ? "parquet"
                    : reader instanceof JsonArrayReader ? "json-array" : "jsonl";
            ReadResult r;
            while ((r = reader.next()) != null) {
                if (!r.isOk()) {
                    if (!settings.skipBadRecords()) {
                        output.abandon();
                        return failed(unit, layout, r.bad(), null);
                    }
                    skipped.merge(r.bad().reason().name(), 1L, Long::sum);
                    continue;
                }
                SourceRecord rec = r.record();
                if (format == null) {
                    format = rec.instruction() == null ? "flan" : "alpaca";
                }
                PromptTemplate t = userTemplate != null ? userTemplate : rec.instruction() == null ? verbatim : alpaca;
                // One record per native call: batch calls measured slower here (docs/PERFORMANCE.md, datasets).
                output.write(encoder.encode(t.source(rec), rec.output()), rec.recordId());
            }
            output.finish();
            String sha = unit.sha256() != null ? unit.sha256() : reader.fileSha256();
            return new FileResult(fileIndex, unit.splitIndex(), location, sha, layout, format == null ? "none" : format,
                    output.records, output.tokens, output.targetTokens, skipped, output.shards,
                    Arrays.copyOf(output.lengths, (int) (2 * output.records)), null, null);
        } catch (MalformedFileException e) {
            output.abandon();
            return failed(unit, layout, null, e.getMessage());
        } catch (IOException e) {
            output.abandon();
            return failed(unit, layout, null, location + ": I/O error while reading it or writing its "
                    + "shards: " + e);
        }
    }

    /** The shards of one file, rolled over every {@code recordsPerShard} records, and the running counts. */
    private final class Output {
        private final FileSystem fs;
        private final Path dir;
        private final String prefix;
        private final Configuration hadoop;
        private final List<DatasetManifest.Shard> shards = new ArrayList<>();
        private ShardWriter shard;
        private int[] lengths = new int[1024];   // [2 * records]: num_tokens, num_target_tokens interleaved
        private long records;
        private long tokens;
        private long targetTokens;

        Output(FileSystem fs, Path dir, String prefix, Configuration hadoop) {
            this.fs = fs;
            this.dir = dir;
            this.prefix = prefix;
            this.hadoop = hadoop;
        }

        void write(EncodedExample ex, String recordId) throws IOException {
            if (shard == null || shard.records() == settings.recordsPerShard()) {
                closeShard();
                String name = String.format("%s-%04d.parquet", prefix, shards.size());
                shard = new ShardWriter(fs, dir, name, records, hadoop);
            }
            shard.write(ex, recordId);
            if (2 * records + 2 > lengths.length) {
                lengths = Arrays.copyOf(lengths, lengths.length * 2);
            }
            lengths[(int) (2 * records)] = ex.numTokens();
            lengths[(int) (2 * records + 1)] = ex.numTargetTokens();
            records++;
            tokens += ex.numTokens();
            targetTokens += ex.numTargetTokens();
        }

        void finish() throws IOException {
            closeShard();
        }

        private void closeShard() throws IOException {
            if (shard != null) {
                shard.close();
                shards.add(shard.entry());
                shard = null;
            }
        }

        /** On failure: close without caring; the driver deletes the whole temporary directory. */
        void abandon() {
            if (shard != null) {
                try {
                    shard.close();
                } catch (IOException | RuntimeException ignored) {
                    // the temporary directory is deleted anyway
                }
                shard = null;
            }
        }
    }

    private static FileResult failed(InputUnit unit, String layout, BadRecord bad, String fatal) {
        return new FileResult(unit.fileIndex(), unit.splitIndex(), unit.location(), "", layout, "none", 0, 0, 0,
                new TreeMap<>(), List.of(), new int[0], bad, fatal);
    }
}
