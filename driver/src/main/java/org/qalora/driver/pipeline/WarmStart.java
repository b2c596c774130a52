package org.qalora.driver.pipeline;

import java.io.IOException;
import java.io.Serializable;
import java.util.EnumSet;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.model.Projection;

/**
 * {@code train --warm-start LATEST|PATH}: a run that continues a published adapter on new data. Precisely:
 * <ul>
 *   <li>The new run's round 0 (its committed starting state) is the published version's
 *   {@code adapter_state.safetensors}, byte for byte what the earlier run committed as its final round: A and B, Adam's
 *   moments, and the optimizer step count. Every version carries that file (PublishStage copies it in), so the
 *   earlier run's checkpoints are not needed.
 *   <li>The step counter continues (round r of the new run starts at the published global step plus the new run's
 *   earlier steps): Adam's bias correction belongs with its moments. The learning-rate schedule restarts: warmup and
 *   decay run over the new run's own {@code rounds x steps-per-round} from the published step (the worker's
 *   {@code TrainingConfig.scheduleStart}). Dropout seeds derive from the global step, so they do not repeat.
 *   <li>The base must be the same: the same {@code --model}, method, bits, group size, rank and pooling as the
 *   published adapter's (its manifest records them); anything else is refused before any work, naming both.
 *   <li>The resolved version (path, state SHA-256, step) is the setting's value in the config hash and run.json, so a
 *   crashed warm-started run resumes exactly like any other run, and two runs from different starts never mix.
 *   <li>A PEFT adapter directory ({@code adapter_config.json} and {@code adapter_model.safetensors}, as PEFT or another
 *   trainer wrote it) has no optimizer state: round 0 is its A and B with fresh (zero) Adam moments at step 0, and
 *   the run says so. Its {@code adapter_config.json} must describe this run's adapter (method, rank, lora_alpha, group
 *   size, pooling, all seven target modules), or the run is refused before any work, naming each difference.
 *   <li>{@code LATEST} is the output's own LATEST (a fresh adapter while it names none: the first tick of a
 *   schedule). A rerun of the run that already moved LATEST (all settings but the warm start equal to run.json's)
 *   keeps the start run.json recorded, so a driver killed after its publish completes that run instead of
 *   starting another.
 * </ul>
 */
public final class WarmStart {
    /** The adapter with its optimizer state, in every published version (AdapterStateFile format). */
    public static final String STATE_FILE = "adapter_state.safetensors";
    private static final String SHA = " sha256=";
    private static final String STEP = " step=";
    /** Marks a source that is a PEFT adapter directory (weights only) in {@link Source#id}. */
    private static final String PEFT = " peft-adapter";

    private WarmStart() {}

    /**
     * The resolved start: a published version, its state file, that file's SHA-256 and optimizer step; or, with
     * {@code peft}, a PEFT adapter directory ({@code version}), the SHA-256 of its adapter_model.safetensors, step 0.
     */
    public record Source(String version, String sha256, long step, boolean peft) implements Serializable {
        public Source(String version, String sha256, long step) {
            this(version, sha256, step, false);
        }

        /** The file round 0 is read from: the version's state file, or the PEFT adapter's weights. */
        public String stateFile() { return version + "/" + (peft ? PeftAdapter.WEIGHTS_FILE : STATE_FILE); }

        /** The setting's resolved value (config hash, run.json). */
        public String id() { return version + (peft ? PEFT : "") + SHA + sha256 + STEP + step; }

        /** The source an {@link #id} names, or empty for another value. */
        public static Optional<Source> parse(String id) {
            if (id == null) {
                return Optional.empty();
            }
            int sha = id.lastIndexOf(SHA);
            int step = id.lastIndexOf(STEP);
            if (sha < 0 || step < sha) {
                return Optional.empty();
            }
            String where = id.substring(0, sha);
            boolean peft = where.endsWith(PEFT);
            try {
                return Optional.of(new Source(peft ? where.substring(0, where.length() - PEFT.length()) : where,
                        id.substring(sha + SHA.length(), step), Long.parseLong(id.substring(step + STEP.length())), peft));
            } catch (NumberFormatException e) {
                return Optional.empty();
            }
        }
    }

    /** The job with {@code --warm-start} resolved (null: a fresh adapter), its source, and what was wrong. */
    public record Resolution(TrainJob job, Source source, List<String> problems) {}

    /**
     * The identity of the base and adapter shape a version was trained with, as its manifest records it and as a
     * warm start compares it: the given model (the demo model with its seed), method, and for QA-LoRA bits, group
     * size and pooling; the rank always.
     */
    public static Map<String, String> baseIdentity(TrainJob job) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("model", job.model() == null ? "<demo seed " + job.seed() + ">" : job.model());
        m.put("method", job.method());
        if (job.qalora()) {
            m.put("bits", Integer.toString(job.bits()));
            m.put("group-size", Integer.toString(job.groupSize()));
            m.put("pooling", job.pooling());
        }
        m.put("rank", Integer.toString(job.rank()));
        return m;
    }

    /** Resolves {@code job.warmStart()} (already normalised) against the output directory {@code run}. */
    public static Resolution resolve(TrainJob job, RunDirectory run, Storage storage, Consumer<String> progress) {
        String spec = job.warmStart();
        if (spec == null) {
            return new Resolution(job, null, List.of());
        }
        List<String> problems = new ArrayList<>();
        ModelPublisher publisher = new ModelPublisher(storage);
        Path version;
        if (spec.equals(TrainJob.WARM_START_LATEST)) {
            Optional<Source> pinned = recordedStart(job, run);
            if (pinned.isPresent()) {
                progress.accept("warm start: LATEST as run.json recorded it for this same run: " + pinned.get().version());
                return new Resolution(job.withWarmStart(pinned.get().id()), pinned.get(), List.of());
            }
            Optional<Path> latest = publisher.latest(run.root());
            if (latest.isEmpty()) {
                progress.accept("warm start: " + run.root() + " has no published version yet: starting from a fresh "
                        + "adapter (the first run of a schedule)");
                return new Resolution(job.withWarmStart(null), null, List.of());
            }
            version = latest.get();
        } else {
            Path p = storage.path(spec);
            if (!storage.exists(p)) {
                return refused(job, "--warm-start " + spec + " does not exist: give a published version "
                        + "(OUTPUT/v-...), its adapter/ directory, a run directory, or LATEST");
            } else if (storage.exists(new Path(p, ModelPublisher.MANIFEST))) {
                version = p;
            } else if (p.getName().equals(PublishStage.ADAPTER_DIR)
                    && storage.exists(new Path(p.getParent(), ModelPublisher.MANIFEST))) {
                version = p.getParent();
            } else if (storage.exists(new Path(p, ModelPublisher.LATEST))) {
                Optional<Path> latest = publisher.latest(p);
                if (latest.isEmpty()) {
                    return refused(job, "--warm-start " + spec + ": its LATEST names no complete version");
                }
                version = latest.get();
            } else if (storage.exists(new Path(p, PeftAdapter.CONFIG_FILE))
                    && storage.exists(new Path(p, PeftAdapter.WEIGHTS_FILE))) {
                return fromPeftAdapter(job, p, storage, progress);
            } else {
                return refused(job, "--warm-start " + spec + " is neither a published version (it has no "
                        + ModelPublisher.MANIFEST + "), its adapter/ directory, a run directory (no LATEST), nor a "
                        + "PEFT adapter directory (no " + PeftAdapter.CONFIG_FILE + " and " + PeftAdapter.WEIGHTS_FILE
                        + ")");
            }
        }
        Map<String, String> info = publisher.manifest(version).info();
        if (!storage.exists(new Path(version, STATE_FILE)) || info.get("adapterStateSha256") == null
                || info.get("globalStep") == null) {
            return refused(job, "--warm-start " + version + " has no " + STATE_FILE + " (it was published before "
                    + "warm starts existed): retrain it, or start fresh without --warm-start");
        }
        Map<String, String> here = baseIdentity(job);
        List<String> differ = new ArrayList<>();
        here.forEach((k, v) -> {
            if (!v.equals(info.get(k))) {
                differ.add(k + " " + (info.get(k) == null ? "(not recorded)" : info.get(k)) + " there, " + v + " here");
            }
        });
        if (!differ.isEmpty()) {
            problems.add("--warm-start " + version + " was trained on another base or adapter shape than this run ("
                    + String.join("; ", differ) + "): the adapter in " + version + "/" + PublishStage.ADAPTER_DIR
                    + " fits only its own base; warm start needs the same --model, method, bits, group size, rank "
                    + "and pooling as the run that published it (this run's --output is " + run.root() + ")");
            return new Resolution(job, null, problems);
        }
        Source source = new Source(version.toString(), info.get("adapterStateSha256"),
                Long.parseLong(info.get("globalStep")));
        progress.accept("warm start: from " + version + " (round " + info.get("round") + ", global step "
                + source.step() + ", with its Adam moments)");
        return new Resolution(job.withWarmStart(source.id()), source, List.of());
    }

    /**
     * A PEFT adapter directory without optimizer state: its adapter_config.json is checked against this run's adapter
     * here, before any work (the tensors' shapes against the model's are checked when round 0 is made from them).
     */
    private static Resolution fromPeftAdapter(TrainJob job, Path dir, Storage storage, Consumer<String> progress) {
        Path configFile = new Path(dir, PeftAdapter.CONFIG_FILE);
        QaloraConfig there;
        try {
            there = PeftAdapter.parseConfig(storage.readString(configFile), configFile.toString());
        } catch (IOException | IllegalArgumentException e) {
            return refused(job, "--warm-start " + dir + ": " + configFile + " is not a readable PEFT adapter config: "
                    + e.getMessage());
        }
        List<String> differ = new ArrayList<>();
        if (there.plainLora() == job.qalora()) {
            differ.add("use_qalora " + !there.plainLora() + " there, --method " + job.method() + " here");
        }
        if (there.rank() != job.rank()) {
            differ.add("r " + there.rank() + " there, --rank " + job.rank() + " here");
        }
        if (there.alpha() != job.alpha()) {
            differ.add("lora_alpha " + there.alpha() + " there, --alpha " + job.alpha() + " here");
        }
        if (job.qalora() && !there.plainLora()) {
            if (there.groupSize() != job.groupSize()) {
                differ.add("qalora_group_size " + there.groupSize() + " there, --group-size " + job.groupSize() + " here");
            }
            Pooling pooling = Pooling.fromConfig(job.pooling(), "--pooling");
            if (there.pooling() != pooling) {
                differ.add("qalora_pooling " + there.pooling().configName() + " there, --pooling "
                        + pooling.configName() + " here");
            }
        }
        if (!there.targets().equals(EnumSet.allOf(Projection.class))) {
            differ.add("target_modules " + there.orderedTargets().stream().map(Projection::shortName).toList()
                    + " there; this run adapts all seven projections");
        }
        if (!differ.isEmpty()) {
            return refused(job, "--warm-start " + dir + " is a PEFT adapter of another shape than this run's ("
                    + String.join("; ", differ) + "): a warm start continues the same adapter; give the matching "
                    + "settings or start fresh without --warm-start");
        }
        Source source = new Source(dir.toString(), storage.sha256(new Path(dir, PeftAdapter.WEIGHTS_FILE)), 0, true);
        progress.accept("warm start: from the PEFT adapter " + dir + ", which has no " + STATE_FILE + ": A and B from "
                + "its " + PeftAdapter.WEIGHTS_FILE + ", fresh Adam moments, step 0");
        return new Resolution(job.withWarmStart(source.id()), source, List.of());
    }

    private static Resolution refused(TrainJob job, String problem) {
        return new Resolution(job, null, List.of(problem));
    }

    /**
     * The start run.json recorded when it records this very run (every setting but the warm start equal): a rerun of
     * a run that already published, and so moved LATEST, keeps its start.
     */
    private static Optional<Source> recordedStart(TrainJob job, RunDirectory run) {
        return run.recordedSettings().get("warm-start") instanceof String id
                && run.recordsSameRunExcept(job, java.util.Set.of("warm-start")) ? Source.parse(id) : Optional.empty();
    }
}
