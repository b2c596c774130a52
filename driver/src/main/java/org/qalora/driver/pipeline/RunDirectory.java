package org.qalora.driver.pipeline;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsAction;
import org.apache.hadoop.security.AccessControlException;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.output.ModelPublisher;

/**
 * The output directory of a train run:
 * <pre>
 *   run.json              the settings, config hash and rounds of the run that owns this directory
 *   demo-model/           the generated demo model (no-argument run only)
 *   base-quantized/       the base model after the quantize stage (when the given model was not quantized)
 *   data/                 the prepared (tokenized) dataset (when the given data was raw)
 *   checkpoints/          committed rounds, updates, metrics.jsonl
 *   v-rNNNNN-HHHHHHHH/    published merged models (model + adapter/ + _MANIFEST.json); round + state hash
 *   LATEST                the name of the newest published version
 *   _LOCK                 held by the driver running here ({@link OutputLock})
 * </pre>
 * {@link #problems} inspects the directory without writing; {@link #claim} writes run.json, and is called only
 * once every other check has passed, so that a refused run leaves nothing behind. A rerun resumes only if its
 * settings hash to the recorded value (the number of rounds may grow: that extends the run); otherwise it is
 * refused, listing the settings that differ, so two runs never mix their checkpoints. Only a run that never
 * committed a training round may be replaced ({@code --force}): it holds no training to lose.
 */
public final class RunDirectory {
    public static final String RUN_FILE = "run.json";
    /** Temporary names of the atomic writes into this directory (HadoopPaths, Storage, the prepare job). */
    private static final Pattern LEFTOVER = Pattern.compile("_tmp-.*|\\.[^.].*\\.tmp-.*");
    private static final Pattern ROUND_DIR = Pattern.compile("round-(\\d+)");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    /**
     * What each derived output was made from: a forced restart keeps one whose settings did not change (a 7B
     * quantize is long) and discards the rest. The checkpoints always go.
     */
    private static final Map<String, List<String>> DERIVED = Map.of(
            "demo-model", List.of("model", "seed"),
            // GPTQ calibrated on the training data depends on it (and on how it is tokenized) too.
            "base-quantized", List.of("model", "seed", "method", "bits", "group-size", "quantize", "calibration",
                    "calibration-samples", "calibration-tokens", "calibration-data"),
            "data", List.of("data", "model", "seed", "tokenizer", "template", "skip-bad-records", "source-max-len",
                    "target-max-len"),
            "eval-data", List.of("eval-data", "model", "seed", "tokenizer", "template", "skip-bad-records",
                    "source-max-len", "target-max-len"));

    /** What the directory holds, as read without writing. */
    private enum Kind { NEW, FOREIGN, NOT_A_DIRECTORY, UNREADABLE, SAME_RUN, OTHER_UNTRAINED, OTHER_TRAINED, CONTINUED }

    private record Inspection(Kind kind, Map<String, Object> recorded, int committedRound, List<String> foreign,
                              String detail) {}

    private final Storage storage;
    private final Path root;
    private final Consumer<String> progress;

    public RunDirectory(Storage storage, String output) {
        this(storage, output, s -> {});
    }

    public RunDirectory(Storage storage, String output, Consumer<String> progress) {
        this.storage = storage;
        this.root = storage.path(output);
        this.progress = progress;
    }

    public Path root() { return root; }

    public Path child(String name) { return new Path(root, name); }

    public Path checkpoints() { return child("checkpoints"); }

    /** Why {@code job} may not use this directory (empty when it may); writes nothing. */
    public List<String> problems(TrainJob job, boolean force) {
        Inspection in = inspect(job);
        String out = "--output " + root;
        return switch (in.kind()) {
            case NEW -> writable();
            case NOT_A_DIRECTORY -> List.of(out + " is a file: give a directory");
            case UNREADABLE -> List.of(out + ": " + RUN_FILE + " is unreadable (" + in.detail() + "), so this directory "
                    + "holds something else; use another --output");
            case FOREIGN -> force ? List.of() : List.of(out + " is not empty and holds no qalora run ("
                    + describe(in.foreign()) + "); use a new or empty directory, or pass --force to write the run "
                    + "beside those files");
            case CONTINUED -> List.of();
            case SAME_RUN -> in.committedRound() > job.rounds()
                    ? List.of(out + " holds this run with " + in.committedRound() + " committed rounds; --rounds "
                            + job.rounds() + " is fewer: pass --rounds " + in.committedRound()
                            + " to publish it as it is, or more to extend it")
                    : List.of();
            case OTHER_UNTRAINED -> force ? List.of() : List.of(out + " holds a run with different settings ("
                    + in.detail() + ") that stopped before its first committed round: pass --force to replace it with "
                    + "this run (what it prepared from settings that changed is discarded), or use another --output");
            case OTHER_TRAINED -> List.of(out + " holds a run with different settings (" + in.detail() + ") and "
                    + in.committedRound() + " committed round(s); refusing to mix them: use another --output, or rerun "
                    + "with the original settings to resume it" + (job.roundsFixed() && in.detail().contains("rounds:")
                    ? " (under --lr-schedule " + job.lrSchedule() + " every step's learning rate depends on the "
                            + "number of rounds, so such a run cannot be extended)" : ""));
        };
    }

    /**
     * A new directory must be creatable: its nearest existing ancestor must be a writable directory. Checked here so
     * that a read-only location is one of the problems listed before any work, not a failure after it.
     */
    private List<String> writable() {
        Path p = root;
        while (p != null && !storage.exists(p)) {
            p = p.getParent();
        }
        if (p == null || storage.isDirectory(root)) {
            return List.of();
        }
        if (!storage.isDirectory(p)) {
            return List.of("--output " + root + " cannot be created: " + p + " is a file");
        }
        try {
            storage.fs(p).access(p, FsAction.WRITE);
            return List.of();
        } catch (AccessControlException e) {
            return List.of("--output " + root + " cannot be created: permission denied on " + p + " ("
                    + e.getMessage().lines().findFirst().orElse("") + ")");
        } catch (IOException e) {
            return List.of();   // the file system cannot tell; creating the directory will
        }
    }

    /**
     * Claims the directory for {@code job}; call only once {@link #problems} returned none for it. Writes run.json
     * on first use (beside foreign files or over a run without committed rounds when {@code force}); on a resume
     * removes the leftovers of the run it continues and records a larger number of rounds. Returns true when the
     * directory already belonged to this configuration (a resume or an extension).
     */
    public boolean claim(TrainJob job, boolean force) {
        List<String> refused = problems(job, force);
        if (!refused.isEmpty()) {
            throw new IllegalStateException(String.join("; ", refused));
        }
        Inspection in = inspect(job);
        switch (in.kind()) {
            case SAME_RUN -> {
                removeLeftovers();
                Object recordedRounds = in.recorded().get("rounds");
                if (recordedRounds != null && !recordedRounds.equals(job.rounds())) {
                    progress.accept("extending the run in " + root + " from " + recordedRounds + " to " + job.rounds()
                            + " rounds");
                    writeRunFile(job);
                }
                return true;
            }
            case FOREIGN -> progress.accept("--force: writing the run into " + root + " beside "
                    + describe(in.foreign()));
            case OTHER_UNTRAINED -> replaceUntrained(job, in.recorded());
            case CONTINUED -> replaceContinued(job, in.recorded());
            default -> { }
        }
        storage.mkdirs(root);
        writeRunFile(job);
        return false;
    }

    private void writeRunFile(TrainJob job) {
        Map<String, Object> run = new LinkedHashMap<>();
        run.put("configHash", job.configHash());
        run.put("rounds", job.rounds());
        run.put("settings", job.resultSettings());
        try {
            storage.writeAtomically(child(RUN_FILE), JSON.writeValueAsBytes(run));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** --force over a run that never committed a round: what it derived from settings that changed goes. */
    private void replaceUntrained(TrainJob job, Map<String, Object> recorded) {
        Map<?, ?> old = recorded.get("settings") instanceof Map<?, ?> m ? m : Map.of();
        Map<String, Object> now = job.resultSettings();
        removeLeftovers();
        storage.delete(checkpoints());
        DERIVED.forEach((dir, inputs) -> {
            boolean changed = inputs.stream().anyMatch(k -> !Objects.equals(String.valueOf(old.get(k)),
                    String.valueOf(now.get(k))));
            if (changed && storage.exists(child(dir))) {
                storage.delete(child(dir));
                progress.accept("--force: removed " + child(dir) + " of the replaced run (made from other settings)");
            }
        });
        progress.accept("--force: " + root + " now holds this run (the replaced one had no committed round)");
    }

    /**
     * A warm start from a version of this directory that the run recorded here published (the scheduled case: each
     * tick continues the last one in the same output): that run is finished and its result is the new run's start,
     * so its checkpoints and the derived outputs of settings that changed go. They are first renamed to
     * {@code _tmp-} names (one rename each), then run.json is rewritten, then they are deleted: a crash at any point
     * leaves either the finished run (rerun: the same replacement) or the new run with leftovers that its rerun
     * removes.
     */
    private void replaceContinued(TrainJob job, Map<String, Object> recorded) {
        Map<?, ?> old = recorded.get("settings") instanceof Map<?, ?> m ? m : Map.of();
        Map<String, Object> now = job.resultSettings();
        List<String> moved = new ArrayList<>();
        List<Path> asides = new ArrayList<>();
        List<String> dirs = new ArrayList<>(List.of("checkpoints"));
        DERIVED.forEach((dir, inputs) -> {
            if (inputs.stream().anyMatch(k -> !Objects.equals(String.valueOf(old.get(k)), String.valueOf(now.get(k))))) {
                dirs.add(dir);
            }
        });
        for (String dir : dirs) {
            if (storage.exists(child(dir))) {
                Path aside = Storage.temporarySibling(child(dir));
                if (!storage.renameToFresh(child(dir), aside)) {
                    throw new IllegalStateException("cannot move " + child(dir) + " aside to " + aside);
                }
                moved.add(dir);
                asides.add(aside);
            }
        }
        storage.mkdirs(root);
        writeRunFile(job);
        asides.forEach(storage::delete);
        removeLeftovers();
        progress.accept("warm start into the same output: " + root + " now holds this run; the finished run it "
                + "continues left its published versions, and its " + String.join(", ", moved) + " went");
    }

    /** The settings run.json records (empty when there is none or it is unreadable). */
    public Map<String, Object> recordedSettings() {
        Path file = child(RUN_FILE);
        try {
            if (!storage.exists(file)) {
                return Map.of();
            }
            Map<String, Object> run = JSON.readValue(storage.readAll(file),
                    new TypeReference<LinkedHashMap<String, Object>>() {});
            return run.get("settings") instanceof Map<?, ?> m ? new LinkedHashMap<>(castKeys(m)) : Map.of();
        } catch (IOException | RuntimeException e) {
            return Map.of();
        }
    }

    /**
     * True when run.json records {@code job}'s run but for the settings {@code except}: all other settings equal
     * (compared as JSON, so numbers compare by value whatever Java type they had).
     */
    public boolean recordsSameRunExcept(TrainJob job, java.util.Set<String> except) {
        Map<String, Object> recorded = new LinkedHashMap<>(recordedSettings());
        if (recorded.isEmpty()) {
            return false;
        }
        Map<String, Object> here = new LinkedHashMap<>(job.resultSettings());
        recorded.keySet().removeAll(except);
        here.keySet().removeAll(except);
        try {
            return JSON.readTree(JSON.writeValueAsString(recorded)).equals(JSON.readTree(JSON.writeValueAsString(here)));
        } catch (IOException e) {
            return false;
        }
    }

    /** True when LATEST names a version the run recorded in run.json published (that run is finished). */
    public boolean recordedRunPublished() {
        Path file = child(RUN_FILE);
        if (!storage.exists(file)) {
            return false;
        }
        ModelPublisher publisher = new ModelPublisher(storage);
        try {
            Object hash = JSON.readValue(storage.readAll(file), new TypeReference<LinkedHashMap<String, Object>>() {})
                    .get("configHash");
            return publisher.latest(root).map(v -> Objects.equals(hash, publisher.manifest(v).info().get("configHash")))
                    .orElse(false);
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static Map<String, Object> castKeys(Map<?, ?> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        m.forEach((k, v) -> out.put(String.valueOf(k), v));
        return out;
    }

    /**
     * True when {@code job} warm-starts from a version in this directory that the recorded run published (its
     * manifest carries the recorded config hash): that run is finished, and this one continues it.
     */
    private boolean continuesRecordedRun(TrainJob job, Map<String, Object> recorded) {
        Optional<WarmStart.Source> source = WarmStart.Source.parse(job.warmStart());
        if (source.isEmpty()) {
            return false;
        }
        Path version = storage.path(source.get().version());
        if (!root.equals(version.getParent()) || !storage.exists(new Path(version, ModelPublisher.MANIFEST))) {
            return false;
        }
        Map<String, String> info = new ModelPublisher(storage).manifest(version).info();
        return Objects.equals(recorded.get("configHash"), info.get("configHash"));
    }

    private Inspection inspect(TrainJob job) {
        if (!storage.exists(root)) {
            return new Inspection(Kind.NEW, Map.of(), 0, List.of(), null);
        }
        if (!storage.isDirectory(root)) {
            return new Inspection(Kind.NOT_A_DIRECTORY, Map.of(), 0, List.of(), null);
        }
        Path file = child(RUN_FILE);
        if (!storage.exists(file)) {
            List<String> names = new ArrayList<>();
            for (FileStatus st : list(root)) {
                String name = st.getPath().getName();
                if (!LEFTOVER.matcher(name).matches() && !name.equals(OutputLock.FILE)) {
                    names.add(name);
                }
            }
            return new Inspection(names.isEmpty() ? Kind.NEW : Kind.FOREIGN, Map.of(), 0, names, null);
        }
        Map<String, Object> recorded;
        try {
            recorded = JSON.readValue(storage.readAll(file), new TypeReference<LinkedHashMap<String, Object>>() {});
        } catch (IOException e) {
            return new Inspection(Kind.UNREADABLE, Map.of(), 0, List.of(), e.getMessage());
        }
        int committed = committedRound();
        if (job.configHash().equals(recorded.get("configHash"))) {
            return new Inspection(Kind.SAME_RUN, recorded, committed, List.of(), null);
        }
        if (continuesRecordedRun(job, recorded)) {
            return new Inspection(Kind.CONTINUED, recorded, committed, List.of(), null);
        }
        String diff = differences(recorded.get("settings"), job.resultSettings());
        return new Inspection(committed > 0 ? Kind.OTHER_TRAINED : Kind.OTHER_UNTRAINED, recorded, committed,
                List.of(), diff);
    }

    /**
     * The highest training round with a manifest in the checkpoints (0 when none). Only names and manifests are
     * looked at, not checksums: it decides whether a directory holds training worth keeping, which a torn round
     * also suggests; the checkpoint store verifies rounds before resuming.
     */
    private int committedRound() {
        Path dir = checkpoints();
        if (!storage.isDirectory(dir)) {
            return 0;
        }
        int max = 0;
        for (FileStatus st : list(dir)) {
            Matcher m = ROUND_DIR.matcher(st.getPath().getName());
            if (st.isDirectory() && m.matches()
                    && storage.exists(new Path(st.getPath(), CheckpointStore.MANIFEST))) {
                max = Math.max(max, Integer.parseInt(m.group(1)));
            }
        }
        return max;
    }

    /**
     * Deletes what a run of this directory that was killed mid-write left under temporary names: {@code _tmp-*}
     * (a half-written merged model, its publish directory, a pointer or run.json being replaced, a quantized base
     * or demo model) and {@code .NAME.tmp-*} (a dataset being prepared). Readers already ignore them, but each can be
     * a model-sized copy that nothing else would ever remove. Only ever called for a directory this configuration
     * owns (run.json matches), by the one driver that runs it: a restarted driver, so no writer of ours is alive.
     */
    private void removeLeftovers() {
        for (FileStatus st : list(root)) {
            if (LEFTOVER.matcher(st.getPath().getName()).matches()) {
                storage.delete(st.getPath());
                progress.accept("removed " + st.getPath() + ", left by a run that stopped while writing it");
            }
        }
    }

    private FileStatus[] list(Path dir) {
        try {
            return storage.fs(dir).listStatus(dir);
        } catch (IOException e) {
            throw Storage.failure("list", dir, e);
        }
    }

    private static String describe(List<String> names) {
        List<String> sorted = names.stream().sorted().toList();
        return sorted.size() + " entr" + (sorted.size() == 1 ? "y" : "ies") + ": "
                + String.join(", ", sorted.subList(0, Math.min(3, sorted.size()))) + (sorted.size() > 3 ? ", ..." : "");
    }

    private static String differences(Object recorded, Map<String, Object> now) {
        List<String> out = new ArrayList<>();
        Map<?, ?> old = recorded instanceof Map<?, ?> m ? m : Map.of();
        for (Map.Entry<String, Object> e : now.entrySet()) {
            Object before = old.get(e.getKey());
            if (!Objects.equals(String.valueOf(before), String.valueOf(e.getValue()))) {
                out.add(e.getKey() + ": was " + before + ", now " + e.getValue());
            }
        }
        return out.isEmpty() ? "settings hash differs" : String.join("; ", out);
    }
}
