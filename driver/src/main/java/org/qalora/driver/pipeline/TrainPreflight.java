package org.qalora.driver.pipeline;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.qalora.datasets.prepare.DataPreview;
import org.qalora.datasets.prepare.DatasetManifest;
import org.qalora.datasets.template.TemplateFile;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.quant.GroupSizes;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;

/**
 * Everything about a train job that can be checked in seconds, checked before any work starts and before anything
 * is written: the model's config and tokenizer, bits and group size against the model's dimensions, the first
 * records of every data file, the template, and whether the output directory may be used. Every problem is
 * collected, so that one refusal lists them all (the stages repeat some checks, as they also serve other callers).
 */
public final class TrainPreflight {
    /** Records read from the start of each raw data file: enough to catch a wrong file, cheap at any size. */
    static final int PREVIEW_RECORDS = 20;

    private final HadoopPaths paths;
    private final Storage storage;
    private final Path repoRoot;

    public TrainPreflight(Storage storage, Path repoRoot) {
        this.storage = storage;
        this.paths = storage.paths();
        this.repoRoot = repoRoot;
    }

    /**
     * The job with every path an absolute URI in Hadoop's form ({@code samples/x.json} ->
     * {@code file:/work/samples/x.json}, no trailing slash), the form the run's own paths print in.
     */
    public TrainJob normalise(TrainJob job) {
        return job.withPaths(location -> {
            try {
                // Path(String) drops the trailing slash that a directory's java.nio URI carries.
                return new org.apache.hadoop.fs.Path(storage.path(location).toString()).toString();
            } catch (IllegalArgumentException e) {
                return location;   // left as given; the checks below report it
            }
        });
    }

    /** Throws {@link InvalidSettingsException} listing every problem of {@code job} (already normalised). */
    public void check(TrainJob job, RunDirectory run, boolean force) {
        check(job, run, force, List.of());
    }

    /**
     * As above, with {@code earlier} problems found while resolving the job (a glob matching nothing, an unusable warm
     * start) listed first in the same refusal. Data given as a glob that matched nothing is not checked again.
     */
    public void check(TrainJob job, RunDirectory run, boolean force, List<String> earlier) {
        List<String> problems = new ArrayList<>(earlier);
        LlamaConfig config = model(job, problems);
        String tokenizer = job.tokenizer() != null ? job.tokenizer()
                : job.model() == null ? repoRoot.resolve("samples/tokenizer/tokenizer.json").toString()
                : HadoopPaths.child(job.model(), "tokenizer.json");
        // The vocabulary to fit: the demo model's, the readable model's, or none when the model was refused.
        Integer vocab = job.model() == null ? Integer.valueOf(DemoModel.VOCAB) : config == null ? null : config.vocabSize();
        if (vocab != null || job.tokenizer() != null) {
            tokenizer(tokenizer, job.tokenizer() != null, vocab, job.model(), problems);
        }
        // A glob still in the job matched nothing (DataGlobs listed it already): check the other inputs only.
        List<String> data = job.data().stream().filter(d -> !DataGlobs.isGlob(d)).toList();
        List<String> evalData = job.evalData().stream().filter(d -> !DataGlobs.isGlob(d)).toList();
        if (data.size() == job.data().size() || !data.isEmpty()) {
            data("--data", data, job, problems);
        }
        if (!evalData.isEmpty()) {
            data("--eval-data", evalData, job, problems);
        }
        if (job.qalora() && job.gptq() && job.calibration() != null) {
            calibration(job.calibration(), problems);
        }
        if (job.template() != null && !job.template().equals("auto")) {
            try {
                TemplateFile.parse(paths.readAllBytes(job.template()), job.template());
            } catch (IOException | RuntimeException e) {
                problems.add("--template " + job.template() + ": " + message(e));
            }
        }
        problems.addAll(run.problems(job, force));
        if (!problems.isEmpty()) {
            throw new InvalidSettingsException("cannot start the run (nothing was started or written)", problems);
        }
    }

    /**
     * The given inputs that do not exist, for a job whose values were refused before it could be built (then the
     * checks of {@link #check} cannot run, yet a missing file belongs in the same refusal). {@code merged} may be null.
     */
    public static List<String> missingInputs(Map<String, Object> merged, HadoopPaths paths) {
        List<String> missing = new ArrayList<>();
        if (merged == null) {
            return missing;
        }
        for (String key : List.of("model", "tokenizer", "template", "data", "eval-data", "calibration")) {
            for (String location : TrainJobLoader.paths(merged, key)) {
                try {
                    if (!(key.equals("template") && location.equals("auto")) && !paths.exists(location)
                            && !DataGlobs.isGlob(location)) {
                        missing.add("--" + key + " " + location + " does not exist (or is not readable)"
                                + DataPreview.didYouMean(location, paths.configuration()));
                    }
                } catch (IOException | RuntimeException e) {
                    missing.add("--" + key + " " + location + " cannot be read: " + message(e));
                }
            }
        }
        return missing;
    }

    /**
     * GPTQ's calibration text: it must exist and hold text (too few tokens is found when it is tokenized, still
     * before any quantization work: {@code CalibrationSampler}).
     */
    private void calibration(String file, List<String> problems) {
        try {
            if (!paths.exists(file)) {
                problems.add("--calibration " + file + " does not exist (or is not readable)"
                        + DataPreview.didYouMean(file, paths.configuration()));
            } else if (paths.isDirectory(file) || paths.length(file) == 0) {
                problems.add("--calibration " + file + " is " + (paths.isDirectory(file) ? "a directory" : "empty")
                        + ": give a UTF-8 text file to draw GPTQ's calibration windows from");
            }
        } catch (IOException | RuntimeException e) {
            problems.add("--calibration " + file + " cannot be read: " + message(e));
        }
    }

    /** The model's config (the demo model's without generating it), or null after adding why it is unusable. */
    private LlamaConfig model(TrainJob job, List<String> problems) {
        if (job.model() == null) {
            checkGroupSize(job, List.of(DemoModel.HIDDEN, DemoModel.INTERMEDIATE), "the demo model", problems);
            return null;
        }
        LlamaConfig config;
        try {
            if (!paths.exists(job.model())) {
                problems.add("--model " + job.model() + " does not exist (or is not readable)"
                        + DataPreview.didYouMean(job.model(), storage.conf()));
                return null;
            }
            config = LlamaConfig.read(job.model(), paths);
        } catch (IOException | RuntimeException e) {
            problems.add("--model " + job.model() + " is not a readable LLaMA checkpoint: " + message(e));
            return null;
        }
        if (!job.qalora() && config.isQuantized()) {
            problems.add("--method lora trains plain LoRA on a float model, but --model " + job.model() + " is a "
                    + config.quantization().bits() + "-bit GPTQ checkpoint: pass the float (HF) checkpoint, or use "
                    + "--method qalora");
        } else if (job.qalora() && !config.isQuantized()) {
            checkGroupSize(job, List.of(config.hiddenSize(), config.numAttentionHeads() * config.headDim(),
                    config.intermediateSize()), "model " + job.model(), problems);
        }
        return config;
    }

    /** QA-LoRA quantizes the model first: the group size must divide every projection's input dimension. */
    private static void checkGroupSize(TrainJob job, List<Integer> inputDims, String model, List<String> problems) {
        if (!job.qalora() || job.groupSize() < 1) {
            return;
        }
        TreeSet<Integer> dims = new TreeSet<>(inputDims);
        List<Integer> misfit = dims.stream().filter(d -> d % job.groupSize() != 0).toList();
        if (!misfit.isEmpty()) {
            problems.add("--group-size " + job.groupSize() + " does not divide the input dimension(s) " + misfit
                    + " of " + model + "'s projections; "
                    + GroupSizes.hint(dims.stream().mapToInt(Integer::intValue).toArray()));
        }
    }

    private void tokenizer(String tokenizer, boolean given, Integer vocab, String model, List<String> problems) {
        try {
            if (!paths.exists(tokenizer)) {
                problems.add(given ? "--tokenizer " + tokenizer + " does not exist (or is not readable)"
                        : "--model " + model + " has no tokenizer.json: pass --tokenizer FILE");
                return;
            }
            byte[] json = paths.readAllBytes(tokenizer);
            if (vocab != null) {
                TokenizerVocabulary.checkFits(json, tokenizer, vocab, model == null ? "the demo model" : model);
            } else {
                TokenizerVocabulary.size(json, tokenizer);   // at least a tokenizer file
            }
        } catch (IOException | RuntimeException e) {
            problems.add(message(e));
        }
    }

    private void data(String flag, List<String> data, TrainJob job, List<String> problems) {
        if (data.isEmpty()) {
            problems.add("no " + flag + " given: pass raw records (JSON, JSONL, Parquet) or a prepared dataset directory");
            return;
        }
        try {
            if (data.size() == 1 && paths.exists(HadoopPaths.child(data.get(0), DatasetManifest.MANIFEST))) {
                return;   // a prepared dataset: its manifest was checked when it was written
            }
        } catch (IOException e) {
            problems.add(flag + " " + data.get(0) + " cannot be read: " + e.getMessage());
            return;
        }
        problems.addAll(DataPreview.problems(flag, data, storage.conf(), PREVIEW_RECORDS, job.skipBadRecords()));
    }

    private static String message(Throwable e) {
        return e.getMessage() != null ? e.getMessage() : e.toString();
    }
}
