package org.qalora.driver.pipeline;

import java.io.IOException;
import java.util.List;
import java.util.function.Consumer;
import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.prepare.PrepareJob;
import org.qalora.datasets.prepare.PrepareSettings;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.quant.io.HadoopPaths;

/**
 * The data stage, for the training data ({@code --data} into {@code OUTPUT/data}) and the held-out data
 * ({@code --eval-data} into {@code OUTPUT/eval-data}) alike: a single directory holding {@code manifest.json} is a
 * prepared dataset and is used as is; anything else is raw records, prepared (template, tokenize, shard) by the
 * datasets module's Spark job, once: a rerun reuses it.
 */
public final class DataStage {
    private final HadoopPaths paths;
    private final Consumer<String> progress;
    private final ExampleEncoder.Settings encoding;
    private final boolean skipBadRecords;

    public DataStage(HadoopPaths paths, Consumer<String> progress) {
        this(paths, progress, ExampleEncoder.Settings.QALORA, false);
    }

    /**
     * @param encoding       source/target token limits of raw records ({@code --source-max-len, --target-max-len})
     * @param skipBadRecords skip and count bad raw records instead of stopping ({@code --skip-bad-records})
     */
    public DataStage(HadoopPaths paths, Consumer<String> progress, ExampleEncoder.Settings encoding,
                     boolean skipBadRecords) {
        this.paths = paths;
        this.progress = progress;
        this.encoding = encoding;
        this.skipBadRecords = skipBadRecords;
    }

    /** Where the data of each flag is prepared to, under the run directory. */
    public enum Kind {
        TRAIN("--data", "data"), HELD_OUT("--eval-data", "eval-data");

        final String flag;
        final String dir;

        Kind(String flag, String dir) {
            this.flag = flag;
            this.dir = dir;
        }
    }

    /** Returns the prepared dataset directory. */
    public String resolve(SparkSession spark, Kind kind, List<String> data, String tokenizer, String template,
                          String runDir) throws IOException {
        if (data.isEmpty()) {
            throw new IllegalArgumentException("no " + kind.flag + " given: pass raw records (JSON, JSONL, Parquet) or a "
                    + "prepared dataset directory");
        }
        for (String d : data) {
            if (!paths.exists(d)) {
                throw new IllegalArgumentException(kind.flag + " " + d + " does not exist (or is not readable)");
            }
        }
        if (data.size() == 1 && paths.exists(HadoopPaths.child(data.get(0), DatasetManifest.MANIFEST))) {
            progress.accept(kind.dir + ": using the prepared dataset " + data.get(0));
            return data.get(0);
        }
        String out = HadoopPaths.child(runDir, kind.dir);
        if (paths.exists(HadoopPaths.child(out, DatasetManifest.MANIFEST))) {
            progress.accept("prepare: reusing " + out);
            return out;
        }
        progress.accept("prepare: " + data + " -> " + out);
        PrepareSettings defaults = PrepareSettings.defaults(data, tokenizer, out);
        PrepareSettings settings = new PrepareSettings(defaults.data(), defaults.tokenizer(), defaults.out(),
                defaults.format(), template == null || template.equals("auto") ? null : template,
                defaults.stanfordPrompt(), encoding, defaults.limits(), skipBadRecords, defaults.recordsPerShard(),
                defaults.overwrite());
        DatasetManifest manifest = PrepareJob.run(spark, settings);
        long skipped = manifest.skipped().values().stream().mapToLong(Long::longValue).sum();
        progress.accept("prepare: " + manifest.records() + " records, " + manifest.targetTokens() + " target tokens"
                + (skipped > 0 ? ", " + skipped + " bad records skipped " + manifest.skipped() : ""));
        return out;
    }
}
