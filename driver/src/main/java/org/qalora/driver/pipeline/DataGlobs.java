package org.qalora.driver.pipeline;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;

/**
 * {@code --data} and {@code --eval-data} globs (Hadoop syntax: {@code hdfs:///data/day=2026-12-*}{@code /*.jsonl},
 * {@code {a,b}}, {@code [0-9]}), expanded with {@code FileSystem.globStatus} once, before anything else reads them,
 * into the matches sorted by path, hidden names ({@code _SUCCESS}, {@code .crc}) left out. The job then names the
 * files themselves, so run.json and the config hash record what was read: a later run whose glob matches new
 * partitions is a different run (it prepares its data anew), and a rerun that matches the same files resumes. A glob
 * matching nothing is a problem naming the pattern.
 */
final class DataGlobs {
    /** The job with its globs expanded, the patterns that matched nothing, and whether any glob was given. */
    record Expanded(TrainJob job, List<String> problems, boolean globbed) {}

    private DataGlobs() {}

    static boolean isGlob(String location) {
        return location.chars().anyMatch(c -> c == '*' || c == '?' || c == '[' || c == '{');
    }

    static Expanded expand(TrainJob job, Storage storage) {
        List<String> problems = new ArrayList<>();
        List<String> data = expand("--data", job.data(), storage, problems);
        List<String> evalData = expand("--eval-data", job.evalData(), storage, problems);
        boolean globbed = job.data().stream().anyMatch(DataGlobs::isGlob)
                || job.evalData().stream().anyMatch(DataGlobs::isGlob);
        return new Expanded(data.equals(job.data()) && evalData.equals(job.evalData()) ? job
                : job.withData(data, evalData), problems, globbed);
    }

    /**
     * The unfinished run of {@code run} that this globbed job restarts, with the files its glob matched then: a
     * scheduled tick whose driver was restarted after a crash (by the operator, with the same arguments) while new
     * partitions arrived must resume, not be refused as another run. So when run.json records this run but for its
     * data (and warm start, and the calibration windows drawn from that data), and that run has not published yet, the job takes the recorded files and start; the
     * next run's glob picks up the new partitions. Empty when that does not apply.
     */
    static java.util.Optional<TrainJob> resumedRun(Expanded expanded, RunDirectory run,
                                                   java.util.function.Consumer<String> progress) {
        TrainJob job = expanded.job();
        Map<String, Object> recorded = run.recordedSettings();
        if (!expanded.globbed() || !expanded.problems().isEmpty()
                || !(recorded.get("data") instanceof List<?> data) || !(recorded.get("eval-data") instanceof List<?> eval)
                || !run.recordsSameRunExcept(job, Set.of("data", "eval-data", "warm-start", "calibration-data"))
                || run.recordedRunPublished()
                || data.equals(job.data()) && eval.equals(job.evalData())) {
            return java.util.Optional.empty();
        }
        List<String> files = data.stream().map(String::valueOf).toList();
        List<String> evalFiles = eval.stream().map(String::valueOf).toList();
        progress.accept("resuming the unfinished run in " + run.root() + " on the " + files.size() + " data file(s) its "
                + "glob matched when it started (it matches " + job.data().size() + " now: the next run takes them)");
        Object start = recorded.get("warm-start");
        return java.util.Optional.of(job.withData(files, evalFiles).withWarmStart(start == null ? null
                : String.valueOf(start)));
    }

    private static List<String> expand(String flag, List<String> given, Storage storage, List<String> problems) {
        List<String> out = new ArrayList<>();
        for (String location : given) {
            if (!isGlob(location)) {
                out.add(location);
                continue;
            }
            Path pattern = new Path(location);
            FileStatus[] matches;
            try {
                matches = storage.fs(pattern).globStatus(pattern);
            } catch (IOException | RuntimeException e) {
                problems.add(flag + " " + location + ": the glob cannot be expanded: " + e.getMessage());
                out.add(location);
                continue;
            }
            List<String> found = new ArrayList<>();
            if (matches != null) {
                for (FileStatus m : matches) {
                    String name = m.getPath().getName();
                    if (!name.startsWith("_") && !name.startsWith(".")) {
                        found.add(m.getPath().toString());
                    }
                }
            }
            if (found.isEmpty()) {
                problems.add(flag + " " + location + ": the glob matches no file or directory (Hadoop glob syntax: "
                        + "* ? [a-z] {a,b}); check the pattern, and that the partitions it names exist");
                out.add(location);
                continue;
            }
            found.sort(Comparator.naturalOrder());
            out.addAll(found);
        }
        return out;
    }
}
