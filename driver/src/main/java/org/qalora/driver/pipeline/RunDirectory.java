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
import java.util.function.Consumer;
import java.util.regex.Pattern;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;

/**
 * The output directory of a train run:
 * <pre>
 *   run.json              the settings and config hash of the run that owns this directory
 *   demo-model/           the generated demo model (no-argument run only)
 *   base-quantized/       the base model after the quantize stage (when the given model was not quantized)
 *   data/                 the prepared (tokenized) dataset (when the given data was raw)
 *   checkpoints/          committed rounds, updates, metrics.jsonl
 *   v-rNNNNN-HHHHHHHH/    published merged models (model + adapter/ + _MANIFEST.json); round + state hash
 *   LATEST                the name of the newest published version
 * </pre>
 * A rerun on the same directory resumes only if its settings hash to the same value; otherwise it is refused,
 * listing the settings that differ, so two runs never mix their checkpoints. A resuming rerun first removes the
 * temporary leftovers of the run it continues.
 */
public final class RunDirectory {
    public static final String RUN_FILE = "run.json";
    /** Temporary names of the atomic writes into this directory (HadoopPaths, Storage, the prepare job). */
    private static final Pattern LEFTOVER = Pattern.compile("_tmp-.*|\\.[^.].*\\.tmp-.*");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

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

    /**
     * Claims the directory for {@code job}: writes run.json on first use, else checks that the recorded run had the
     * same settings. Returns true when the directory already belonged to this configuration (a resume).
     */
    public boolean claim(TrainJob job) {
        if (storage.exists(root) && !storage.isDirectory(root)) {
            throw new IllegalArgumentException("--output " + root + " is a file: give a directory");
        }
        storage.mkdirs(root);
        Path file = child(RUN_FILE);
        if (storage.exists(file)) {
            Map<String, Object> recorded;
            try {
                recorded = JSON.readValue(storage.readAll(file), new TypeReference<LinkedHashMap<String, Object>>() {});
            } catch (IOException e) {
                throw new IllegalStateException(file + " is unreadable (" + e.getMessage() + "): this directory holds "
                        + "something else; use another --output", e);
            }
            if (job.configHash().equals(recorded.get("configHash"))) {
                removeLeftovers();
                return true;
            }
            throw new IllegalStateException("--output " + root + " holds a run with a different configuration ("
                    + differences(recorded.get("settings"), job.resultSettings()) + "); refusing to mix them: use another "
                    + "--output, or rerun with the original settings to resume it");
        }
        Map<String, Object> run = new LinkedHashMap<>();
        run.put("configHash", job.configHash());
        run.put("settings", job.resultSettings());
        try {
            storage.writeAtomically(file, JSON.writeValueAsBytes(run));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return false;
    }

    /**
     * Deletes what a run of this directory that was killed mid-write left under temporary names: {@code _tmp-*}
     * (a half-written merged model, its publish directory, a pointer or run.json being replaced, a quantized base
     * or demo model) and {@code .NAME.tmp-*} (a dataset being prepared). Readers already ignore them, but each can be
     * a model-sized copy that nothing else would ever remove. Only ever called for a directory this configuration
     * owns (run.json matches), by the one driver that runs it: a restarted driver, so no writer of ours is alive.
     */
    private void removeLeftovers() {
        try {
            for (FileStatus st : storage.fs(root).listStatus(root)) {
                if (LEFTOVER.matcher(st.getPath().getName()).matches()) {
                    storage.delete(st.getPath());
                    progress.accept("removed " + st.getPath() + ", left by a run that stopped while writing it");
                }
            }
        } catch (IOException e) {
            throw Storage.failure("list", root, e);
        }
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
