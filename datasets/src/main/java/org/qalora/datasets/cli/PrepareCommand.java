package org.qalora.datasets.cli;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.prepare.BadDataException;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.prepare.PrepareJob;
import org.qalora.datasets.prepare.PrepareKryoRegistrator;
import org.qalora.datasets.prepare.PrepareSettings;
import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.read.RecordValidator;
import org.qalora.datasets.tokenize.ExampleEncoder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code qalora prepare}: tokenize Alpaca / FLAN files into Parquet shards + manifest.json (see docs/DATA.md). */
@Command(name = "prepare", mixinStandardHelpOptions = true,
        description = "Validate, template and tokenize Alpaca or FLAN-v2 data into Parquet shards and a manifest.json.")
public final class PrepareCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--data", required = true, arity = "1..*", paramLabel = "PATH",
            description = "Input files, directories or globs (local, hdfs://, s3a://...): .json (array), .jsonl, .parquet.")
    List<String> data;

    @Option(names = "--tokenizer", required = true, paramLabel = "FILE",
            description = "HF tokenizer.json; a tokenizer_config.json beside it names BOS/EOS/PAD.")
    String tokenizer;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory (must not exist unless --overwrite).")
    String out;

    @Option(names = "--format", defaultValue = "auto", paramLabel = "alpaca|flan|auto",
            description = "Record fields; auto decides per file from the first record (default: ${DEFAULT-VALUE}).")
    String format;

    @Option(names = "--template", paramLabel = "FILE",
            description = "A prompt template file (JSON: prompt, or prompt_input + prompt_no_input; see docs/DATA.md).")
    String template;

    @Option(names = "--stanford-prompt",
            description = "Alpaca prompts end with \"### Response:\" (original Stanford) instead of qa-lora's \"### Response: \".")
    boolean stanfordPrompt;

    @Option(names = "--source-max-len", paramLabel = "N", defaultValue = "1024", description = "Source tokens kept, BOS included (default: ${DEFAULT-VALUE}).")
    int sourceMaxLen;

    @Option(names = "--target-max-len", paramLabel = "N", defaultValue = "256", description = "Target tokens kept, EOS included (default: ${DEFAULT-VALUE}).")
    int targetMaxLen;

    @Option(names = "--train-on-source", description = "Also compute the loss on the source tokens.")
    boolean trainOnSource;

    @Option(names = "--max-record-chars", paramLabel = "N", defaultValue = "200000",
            description = "Reject records whose instruction+input+output exceed this many characters (default: ${DEFAULT-VALUE}).")
    int maxRecordChars;

    @Option(names = "--skip-bad-records", description = "Skip bad records and count them per reason instead of stopping.")
    boolean skipBadRecords;

    @Option(names = "--records-per-shard", paramLabel = "N", defaultValue = "100000", description = "Max records per shard file (default: ${DEFAULT-VALUE}).")
    int recordsPerShard;

    @Option(names = "--split-bytes", paramLabel = "BYTES", defaultValue = "67108864",
            description = "JSONL files larger than this are prepared by several tasks, one per line-aligned split of "
                    + "about this many bytes (default: ${DEFAULT-VALUE}).")
    long splitBytes;

    @Option(names = "--overwrite", description = "Replace --out if it exists.")
    boolean overwrite;

    @Option(names = "--master", paramLabel = "URL", defaultValue = "local[*]",
            description = "Spark master when no SparkSession is active (default: ${DEFAULT-VALUE}).")
    String master;

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter outw = spec.commandLine().getOut();
        PrepareSettings settings;
        try {
            settings = new PrepareSettings(data, tokenizer, out, RecordFormat.parse(format), template, stanfordPrompt,
                    new ExampleEncoder.Settings(sourceMaxLen, targetMaxLen, trainOnSource),
                    new RecordValidator.Limits(maxRecordChars), skipBadRecords, recordsPerShard, overwrite, splitBytes);
        } catch (IllegalArgumentException e) {
            err.println("prepare: " + e.getMessage());
            return 2;
        }
        SparkSession active = SparkSession.getActiveSession().getOrElse(() -> SparkSession.getDefaultSession()
                .getOrElse(() -> null));
        SparkSession spark = active != null ? active
                : SparkSession.builder().config(PrepareKryoRegistrator.apply(new SparkConf()
                        .set("spark.master", master).set("spark.app.name", "qalora prepare")))
                        .getOrCreate();
        try {
            DatasetManifest m = PrepareJob.run(spark, settings);
            outw.printf("prepared %d records (%d tokens, %d target tokens) in %d shards into %s%n", m.records(),
                    m.tokens(), m.targetTokens(), m.shards().size(), out);
            long skipped = m.skipped().values().stream().mapToLong(Long::longValue).sum();
            if (skipped > 0) {
                outw.printf("skipped %d bad records:", skipped);
                m.skipped().forEach((k, v) -> {
                    if (v > 0) {
                        outw.printf(" %s=%d", k, v);
                    }
                });
                outw.println();
            }
            outw.println("dataset hash " + m.datasetHash());
            outw.flush();
            return 0;
        } catch (BadDataException | IllegalArgumentException e) {
            err.println("prepare: " + e.getMessage());
            err.flush();
            return 2;
        } finally {
            if (active == null) {
                spark.stop();
            }
        }
    }
}
