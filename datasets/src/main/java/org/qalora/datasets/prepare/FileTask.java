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

import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The work of one Spark task: read one input file, validate, template, tokenize, and write its shards
 * ({@code part-FFFFF-CCCC.parquet}: file index, chunk index) into the job's temporary directory.
 * Spark-free, so it is also what the single-file tests and the benchmark call.
 */
final class FileTask implements Serializable {

    private final PrepareSettings settings;
    private final byte[] tokenizerJson;
    private final byte[] tokenizerConfig;     // may be null
    private final PromptTemplate userTemplate; // may be null
    private final SerializableConf conf;

    FileTask(PrepareSettings settings, byte[] tokenizerJson, byte[] tokenizerConfig, PromptTemplate userTemplate,
             Configuration conf) {
        this.settings = settings;
        this.tokenizerJson = tokenizerJson;
        this.tokenizerConfig = tokenizerConfig;
        this.userTemplate = userTemplate;
        this.conf = new SerializableConf(conf);
    }

    FileResult run(int fileIndex, String location, String tmpDir) throws IOException {
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
        List<DatasetManifest.Shard> shards = new ArrayList<>();
        int[] lengths = new int[1024];
        long records = 0;
        long tokens = 0;
        long targetTokens = 0;
        String layout;
        String format = null;
        ShardWriter shard = null;
        try (RecordReader reader = RecordReaders.open(location, hadoop, settings.format(), settings.limits())) {
            layout = reader instanceof ParquetRecordReader ? "parquet"
                    : reader instanceof JsonArrayReader ? "json-array" : "jsonl";
            ReadResult r;
            while ((r = reader.next()) != null) {
                if (!r.isOk()) {
                    if (!settings.skipBadRecords()) {
                        closeQuietly(shard);
                        return failed(fileIndex, location, layout, r.bad(), null);
                    }
                    skipped.merge(r.bad().reason().name(), 1L, Long::sum);
                    continue;
                }
                SourceRecord rec = r.record();
                if (format == null) {
                    format = rec.instruction() == null ? "flan" : "alpaca";
                }
                PromptTemplate t = userTemplate != null ? userTemplate : rec.instruction() == null ? verbatim : alpaca;
                EncodedExample ex = encoder.encode(t.source(rec), rec.output());
                if (shard == null || shard.records() == settings.recordsPerShard()) {
                    if (shard != null) {
                        shard.close();
                        shards.add(shard.entry());
                    }
                    String name = String.format("part-%05d-%04d.parquet", fileIndex, shards.size());
                    shard = new ShardWriter(fs, dir, name, records, hadoop);
                }
                shard.write(ex, rec.recordId());
                if (2 * records + 2 > lengths.length) {
                    lengths = Arrays.copyOf(lengths, lengths.length * 2);
                }
                lengths[(int) (2 * records)] = ex.numTokens();
                lengths[(int) (2 * records + 1)] = ex.numTargetTokens();
                records++;
                tokens += ex.numTokens();
                targetTokens += ex.numTargetTokens();
            }
            if (shard != null) {
                shard.close();
                shards.add(shard.entry());
                shard = null;
            }
            String sha = reader.fileSha256();
            return new FileResult(fileIndex, location, sha, layout, format == null ? "none" : format, records, tokens,
                    targetTokens, skipped, shards, Arrays.copyOf(lengths, (int) (2 * records)), null, null);
        } catch (MalformedFileException e) {
            closeQuietly(shard);
            return failed(fileIndex, location, "?", null, e.getMessage());
        } catch (IOException e) {
            closeQuietly(shard);
            return failed(fileIndex, location, "?", null, location + ": cannot read: " + e);
        }
    }

    private static FileResult failed(int fileIndex, String location, String layout, BadRecord bad, String fatal) {
        return new FileResult(fileIndex, location, "", layout, "none", 0, 0, 0, new TreeMap<>(), List.of(), new int[0],
                bad, fatal);
    }

    private static void closeQuietly(ShardWriter w) {
        if (w != null) {
            try {
                w.close();
            } catch (IOException | RuntimeException ignored) {
                // the temporary directory is deleted anyway
            }
        }
    }
}
