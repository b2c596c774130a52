package org.qalora.datasets.bench;

import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.prepare.PrepareJob;
import org.qalora.datasets.prepare.PrepareSettings;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Throughput of {@code prepare} on a synthetic Alpaca-like dataset, against the raw tokenizer speed measured in the
 * same run on the same records with no I/O and no Spark: one record per call on one thread (the ratio printed), and
 * batches of 256 (the HF library spreads a batch over all cores), and DJL's full {@code Encoding} path. It also
 * prepares all records as one file, unsplit (one task) and cut into 4 line-aligned splits.
 *
 * <pre>
 *   mvn -o -B -pl datasets test-compile dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 *   java $(flags) -cp datasets/target/classes:datasets/target/test-classes:$(cat datasets/target/cp.txt) \
 *        org.qalora.datasets.bench.PrepareBench RECORDS FILES TOKENIZER_JSON WORK_DIR
 * </pre>
 */
public final class PrepareBench {

    private static final String[] SYLLABLES = {"ka", "lo", "mi", "ren", "tas", "vo", "dul", "ne", "pri", "sol",
            "gar", "tu", "wen", "bel", "cor", "fi", "ha", "jun", "ox", "ze"};

    public static void main(String[] args) throws Exception {
        int records = Integer.parseInt(args[0]);
        int files = Integer.parseInt(args[1]);
        String tokenizer = args[2];
        Path work = Path.of(args[3]);
        Files.createDirectories(work);

        List<String> data = generate(work.resolve("data"), records, files, 11);
        List<String> warm = generate(work.resolve("warm"), 500, files, 12);

        SparkSession spark = SparkSession.builder().master("local[" + Runtime.getRuntime().availableProcessors() + "]")
                .appName("prepare-bench").config("spark.ui.enabled", "false").getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        PrepareJob.run(spark, PrepareSettings.defaults(warm, tokenizer, work.resolve("out-warm").toString()));

        long t0 = System.nanoTime();
        DatasetManifest m = PrepareJob.run(spark, PrepareSettings.defaults(data, tokenizer,
                work.resolve("out").toString()));
        double secs = (System.nanoTime() - t0) / 1e9;

        // One file of all records: one task unsplit, vs cut into line-aligned splits of a quarter of its size.
        List<String> one = generate(work.resolve("one"), records, 1, 11);
        long size = Files.size(Path.of(one.getFirst()));
        long t4 = System.nanoTime();
        PrepareJob.run(spark, PrepareSettings.defaults(one, tokenizer, work.resolve("out-one").toString()));
        double oneSecs = (System.nanoTime() - t4) / 1e9;
        long t5 = System.nanoTime();
        DatasetManifest ms = PrepareJob.run(spark, PrepareSettings.defaults(one, tokenizer,
                work.resolve("out-split").toString()).withSplitBytes(size / 4 + 1));
        double splitSecs = (System.nanoTime() - t5) / 1e9;

        // Reference: one thread, encoder only, same records (re-generated in memory).
        TextTokenizer tok = TextTokenizer.open(tokenizer, spark.sparkContext().hadoopConfiguration());
        ExampleEncoder enc = new ExampleEncoder(tok, ExampleEncoder.Settings.QALORA);
        List<SourceRecord> recs = records(records, 11);
        for (int i = 0; i < Math.min(500, recs.size()); i++) {
            enc.encode(AlpacaTemplate.QALORA.source(recs.get(i)), recs.get(i).output());   // warm-up
        }
        long t1 = System.nanoTime();
        long refTokens = 0;
        for (SourceRecord r : recs) {
            refTokens += enc.encode(AlpacaTemplate.QALORA.source(r), r.output()).numTokens();
        }
        double refSecs = (System.nanoTime() - t1) / 1e9;
        // The batch path prepare uses, same records, no I/O, no Spark.
        String[] src = recs.stream().map(AlpacaTemplate.QALORA::source).toArray(String[]::new);
        String[] tgt = recs.stream().map(SourceRecord::output).toArray(String[]::new);
        long t2 = System.nanoTime();
        for (int from = 0; from < records; from += 256) {
            int to = Math.min(records, from + 256);
            enc.encodeBatch(java.util.Arrays.copyOfRange(src, from, to), java.util.Arrays.copyOfRange(tgt, from, to));
        }
        double batchSecs = (System.nanoTime() - t2) / 1e9;
        // DJL's public Encoding API, one record per call (what encode() did before it asked for the ids alone).
        long t3 = System.nanoTime();
        for (int i = 0; i < records; i++) {
            tok.encodeWithDjlEncoding(src[i], true);
            tok.encodeWithDjlEncoding(tgt[i] + tok.eosToken(), false);
        }
        double djlSecs = (System.nanoTime() - t3) / 1e9;

        System.out.printf("prepare: %d records, %d tokens, %d files, %d cores: %.2f s = %.0f records/s, %.0f tokens/s%n",
                m.records(), m.tokens(), files, Runtime.getRuntime().availableProcessors(), secs, m.records() / secs,
                m.tokens() / secs);
        System.out.printf("one file, one task: %.2f s = %.0f records/s; split in %d: %.2f s = %.0f records/s; "
                + "speedup %.2fx%n", oneSecs, records / oneSecs, ms.shards().size(), splitSecs, records / splitSecs,
                oneSecs / splitSecs);
        System.out.printf("reference (1 thread, encode only): %.2f s = %.0f records/s, %.0f tokens/s%n", refSecs,
                records / refSecs, refTokens / refSecs);
        System.out.printf("reference (batches of 256, encode only): %.2f s = %.0f records/s%n", batchSecs,
                records / batchSecs);
        System.out.printf("reference (1 thread, DJL Encoding objects): %.2f s = %.0f records/s; ids-only speedup %.2fx%n",
                djlSecs, records / djlSecs, djlSecs / refSecs);
        System.out.printf("prepare / single-thread encode throughput ratio: %.2f%n", (m.records() / secs) / (records / refSecs));
        spark.stop();
    }

    static List<SourceRecord> records(int n, long seed) {
        Random r = new Random(seed);
        List<SourceRecord> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            String instruction = "Describe the " + words(r, 2 + r.nextInt(4)) + " in a few sentences.";
            String input = r.nextBoolean() ? "" : words(r, 5 + r.nextInt(40));
            String output = words(r, 20 + r.nextInt(150)) + ".";
            out.add(new SourceRecord("bench:" + i, instruction, input, output));
        }
        return out;
    }

    private static String words(Random r, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            if (i > 0) {
                sb.append(' ');
            }
            int syl = 1 + r.nextInt(3);
            for (int s = 0; s < syl; s++) {
                sb.append(SYLLABLES[r.nextInt(SYLLABLES.length)]);
            }
        }
        return sb.toString();
    }

    private static List<String> generate(Path dir, int n, int files, long seed) throws IOException {
        Files.createDirectories(dir);
        List<SourceRecord> recs = records(n, seed);
        List<String> paths = new ArrayList<>();
        for (int f = 0; f < files; f++) {
            Path p = dir.resolve(String.format("part-%02d.jsonl", f));
            try (BufferedWriter w = Files.newBufferedWriter(p, StandardCharsets.UTF_8)) {
                for (int i = f; i < n; i += files) {
                    SourceRecord s = recs.get(i);
                    w.write("{\"instruction\": \"" + s.instruction() + "\", \"input\": \"" + s.input()
                            + "\", \"output\": \"" + s.output() + "\"}\n");
                }
            }
            paths.add(p.toString());
        }
        return paths;
    }
}
