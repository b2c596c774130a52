package org.qalora.driver.pipeline;

import java.io.IOException;
import java.util.List;
import java.util.function.Consumer;
import org.apache.spark.sql.SparkSession;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.prepare.PrepareJob;
import org.qalora.datasets.prepare.PrepareSettings;
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

    public DataStage(HadoopPaths paths, Consumer<String> progress) {
        this.paths = paths;
        this.progress = progress;
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
        PrepareSettings settings = PrepareSettings.defaults(data, tokenizer, out);
        if (template != null && !template.equals("auto")) {
            settings = new PrepareSettings(settings.data(), settings.tokenizer(), settings.out(), settings.format(),
                    template, settings.stanfordPrompt(), settings.encoding(), settings.limits(), settings.skipBadRecords(),
                    settings.recordsPerShard(), settings.overwrite());
        }
        DatasetManifest manifest = PrepareJob.run(spark, settings);
        progress.accept("prepare: " + manifest.records() + " records, " + manifest.targetTokens() + " target tokens");
        return out;
    }
}
