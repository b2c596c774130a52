package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.read.BadRecordReason;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.template.PromptTemplate;
import org.qalora.datasets.template.TemplateFile;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.quant.io.ShippedHadoopConf;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.UUID;

/**
 * The prepare Spark job: one task per input file reads, validates, templates and tokenizes it, and writes its
 * shards straight into a temporary directory beside the output; the driver then checks the per-file results,
 * writes {@code lengths.bin} and {@code manifest.json}, and renames the directory into place. On any error the
 * temporary directory is deleted, so the output is either complete or absent.
 *
 * <p>Determinism: shard names come from (file index, chunk index), rows are written in file order by one task,
 * and the parquet-mr writer puts no time or random id into a file; the manifest has no time or output path.
 * The same inputs and settings therefore give byte-identical output directories.
 */
public final class PrepareJob {

    private PrepareJob() {}

    public static DatasetManifest run(SparkSession spark, PrepareSettings settings) throws IOException {
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        Path given = new Path(settings.out());
        FileSystem outFs = given.getFileSystem(conf);
        Path out = outFs.makeQualified(given);      // so a relative --out has a parent for the temporary directory
        if (outFs.exists(out) && !settings.overwrite()) {
            throw new BadDataException(settings.out() + ": already exists; choose a new --out or pass --overwrite");
        }
        List<String> files = InputFiles.expand(settings.data(), conf);
        byte[] tokJson = readAll(settings.tokenizer(), conf);
        Path cfgPath = new Path(new Path(settings.tokenizer()).getParent(), "tokenizer_config.json");
        byte[] tokCfg = cfgPath.getFileSystem(conf).exists(cfgPath) ? readAll(cfgPath.toString(), conf) : null;
        TextTokenizer tokenizer;
        try {
            tokenizer = TextTokenizer.shared(tokJson, tokCfg, settings.tokenizer());
        } catch (IllegalArgumentException e) {
            throw new BadDataException(e.getMessage());
        }
        PromptTemplate userTemplate = settings.templateFile() == null ? null
                : TemplateFile.parse(readAll(settings.templateFile(), conf), settings.templateFile());

        Path tmp = new Path(out.getParent(), "." + out.getName() + ".tmp-" + UUID.randomUUID());
        outFs.mkdirs(tmp);
        try {
            FileTask task = new FileTask(settings, tokJson, tokCfg, userTemplate, conf);
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            List<InputUnit> units = units(jsc, files, settings.splitBytes(), conf);
            Broadcast<FileTask> bTask = jsc.broadcast(task);
            String tmpDir = tmp.toString();
            List<FileResult> results = new ArrayList<>(jsc.parallelize(units, units.size())
                    .map(u -> bTask.value().run(u, tmpDir))
                    .collect());
            bTask.destroy();
            results.sort(Comparator.comparingInt(FileResult::fileIndex).thenComparingInt(FileResult::splitIndex));
            for (FileResult r : results) {
                if (r.fatal() != null) {
                    throw new BadDataException(r.fatal());
                }
                if (r.firstBad() != null) {
                    throw new BadDataException(r.firstBad().message()
                            + " (pass --skip-bad-records to skip such records and count them)");
                }
            }
            DatasetManifest manifest = assemble(settings, results, tokenizer, userTemplate, outFs, tmp);
            writeFile(outFs, new Path(tmp, DatasetManifest.MANIFEST), manifest.toJsonBytes());
            if (settings.overwrite() && outFs.exists(out)) {
                outFs.delete(out, true);
            }
            if (!outFs.rename(tmp, out)) {
                throw new IOException("cannot rename " + tmp + " to " + out);
            }
            return manifest;
        } finally {
            if (outFs.exists(tmp)) {
                outFs.delete(tmp, true);
            }
        }
    }

    /**
     * One unit per file, except JSONL files larger than {@code splitBytes}, which a first Spark job cuts into
     * line-aligned splits (one task per such file, reading it once).
     */
    private static List<InputUnit> units(JavaSparkContext jsc, List<String> files, long splitBytes,
                                         Configuration conf) throws IOException {
        List<Integer> big = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) {
            Path p = new Path(files.get(i));
            if (!files.get(i).endsWith(".parquet") && p.getFileSystem(conf).getFileStatus(p).getLen() > splitBytes) {
                big.add(i);
            }
        }
        java.util.Map<Integer, List<InputUnit>> split = new java.util.HashMap<>();
        if (!big.isEmpty()) {
            ShippedHadoopConf sc = new ShippedHadoopConf(conf);
            jsc.parallelize(big, big.size())
                    .map(i -> JsonlSplits.split(i, files.get(i), splitBytes, sc.get()))
                    .collect()
                    .forEach(l -> split.put(l.getFirst().fileIndex(), l));
        }
        List<InputUnit> units = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) {
            units.addAll(split.getOrDefault(i, List.of(InputUnit.wholeFile(i, files.get(i)))));
        }
        return units;
    }

    private static DatasetManifest assemble(PrepareSettings s, List<FileResult> results, TextTokenizer tokenizer,
                                            PromptTemplate userTemplate, FileSystem fs, Path tmp) throws IOException {
        long records = 0;
        long tokens = 0;
        long targetTokens = 0;
        SortedMap<String, Long> skipped = new TreeMap<>();
        for (BadRecordReason r : BadRecordReason.values()) {
            skipped.put(r.name(), 0L);
        }
        List<DatasetManifest.Input> inputs = new ArrayList<>();
        List<DatasetManifest.Shard> shards = new ArrayList<>();
        ByteArrayOutputStream lengthBytes = new ByteArrayOutputStream();
        DataOutputStream lengths = new DataOutputStream(lengthBytes);
        for (FileResult r : results) {
            for (DatasetManifest.Shard sh : r.shards()) {
                shards.add(new DatasetManifest.Shard(sh.name(), records + sh.firstRecord(), sh.records(), sh.bytes(),
                        sh.sha256()));
            }
            for (int v : r.lengths()) {
                lengths.writeInt(v);
            }
            records += r.records();
            tokens += r.tokens();
            targetTokens += r.targetTokens();
            r.skipped().forEach((k, v) -> skipped.merge(k, v, Long::sum));
            DatasetManifest.Input unit = new DatasetManifest.Input(r.location(), r.sha256(), r.layout(), r.format(),
                    r.records(), r.skippedTotal());
            if (r.splitIndex() == 0) {
                inputs.add(unit);
            } else {   // a later split of the same file: one entry per file in the manifest
                DatasetManifest.Input prev = inputs.removeLast();
                inputs.add(new DatasetManifest.Input(prev.location(), prev.sha256(), prev.layout(),
                        prev.format().equals("none") ? unit.format() : prev.format(), prev.records() + unit.records(),
                        prev.skipped() + unit.skipped()));
            }
        }
        if (records == 0) {
            throw new BadDataException("no valid records in " + String.join(", ", s.data())
                    + (s.skipBadRecords() ? " (all were skipped: " + skipped + ")" : ""));
        }
        lengths.flush();
        byte[] lb = lengthBytes.toByteArray();
        writeFile(fs, new Path(tmp, DatasetManifest.LENGTHS), lb);
        String template = userTemplate != null ? userTemplate.describe()
                : (s.stanfordPrompt() ? AlpacaTemplate.STANFORD : AlpacaTemplate.QALORA).describe() + "+verbatim";
        DatasetManifest.Settings settings = new DatasetManifest.Settings(tokenizer.sha256(), s.format().name().toLowerCase(),
                template, s.encoding().sourceMaxLen(), s.encoding().targetMaxLen(), s.encoding().trainOnSource(),
                s.limits().maxRecordChars(), s.skipBadRecords(), s.recordsPerShard(), s.splitBytes());
        StringBuilder h = new StringBuilder();
        inputs.forEach(i -> h.append(i.sha256()).append('\n'));
        try {
            h.append(DatasetManifest.JSON.writeValueAsString(settings));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return new DatasetManifest(DatasetManifest.FORMAT_VERSION, sha256(h.toString().getBytes(StandardCharsets.UTF_8)),
                inputs, settings, records, tokens, targetTokens, skipped, tokenizer.bosId(), tokenizer.eosId(),
                tokenizer.padId(), shards, DatasetManifest.LENGTHS, sha256(lb));
    }

    static byte[] readAll(String location, Configuration conf) throws IOException {
        Path p = new Path(location);
        try (FSDataInputStream in = p.getFileSystem(conf).open(p)) {
            return in.readAllBytes();
        } catch (java.io.FileNotFoundException e) {
            throw new BadDataException(location + ": no such file");
        }
    }

    private static void writeFile(FileSystem fs, Path p, byte[] bytes) throws IOException {
        try (FSDataOutputStream o = fs.create(p, false)) {
            o.write(bytes);
        }
    }

    private static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
