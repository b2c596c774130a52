package org.qalora.driver.pipeline;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.apache.hadoop.fs.FileUtil;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.HoldPoint;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.merge.MergeJob;
import org.qalora.driver.output.ModelPublisher;
import org.qalora.driver.checkpoint.CheckpointStore;
import org.qalora.driver.state.StateParts;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.train.AdapterState;

/**
 * The final stage: writes the final averaged adapter in the PEFT layout under {@code adapter/}, then runs the
 * {@link MergeJob} (the adapter folded into the quantized base's zero points, or a plain LoRA adapter into the float
 * base's weights, by Spark tasks that each write shards, checked on an executor against the adapter model's logits),
 * and publishes the directory atomically as {@code OUTPUT/v-rNNNNN-<hash>/} with a {@code _MANIFEST.json} of
 * checksums and {@code OUTPUT/LATEST} pointing at it ({@link ModelPublisher}). The driver loads no weight here: it
 * plans from headers and config.json, streams the committed state's tensors into the version's adapter files, and
 * commits.
 */
public final class PublishStage {
    public static final String ADAPTER_DIR = "adapter";

    private final Storage storage;
    private final HoldPoint hold;
    private final MergeJob merge;
    private final long maxShardBytes;
    private final Consumer<String> progress;

    /**
     * @param hold          the test hook that can stop the driver between the rename and the LATEST flip
     * @param maxShardBytes the largest weights file of the merged model ({@code --max-shard-size})
     */
    public PublishStage(Storage storage, HoldPoint hold, MergeJob merge, long maxShardBytes, Consumer<String> progress) {
        this.storage = storage;
        this.hold = hold;
        this.merge = merge;
        this.maxShardBytes = maxShardBytes;
        this.progress = progress;
    }

    /** The published version of this configuration's final round, if a previous run already published it. */
    public Optional<Path> alreadyPublished(Path root, String configHash, int round) {
        ModelPublisher publisher = new ModelPublisher(storage);
        return publisher.latest(root).filter(dir -> {
            Map<String, String> info = publisher.manifest(dir).info();
            return configHash.equals(info.get("configHash")) && Integer.toString(round).equals(info.get("round"));
        });
    }

    /**
     * Merges and publishes the final adapter of the committed round {@code committed}. The round's state identity
     * ({@link CheckpointStore.Committed#stateId}) names the version with the round ({@code v-rNNNNN-<8 hex>}), so the
     * name, like every byte under it, is the same however often the run was stopped and restarted, and a restart
     * that finds that version complete but not yet named by LATEST only has to flip LATEST.
     *
     * <p>The round's state goes into the version as one file, {@value WarmStart#STATE_FILE}: the adapter with its Adam
     * moments and step, what {@code --warm-start} continues from. One committed file is copied; parts (a round
     * averaged on the executors) are concatenated tensor by tensor ({@link StateParts}) into the single file a
     * one-file commit of the round would have held, whose SHA-256 is computed first, from a streaming read: it names
     * the version and goes into its manifest, as a copied file's does. The PEFT adapter is streamed from the same
     * files. Nothing here holds the state: the driver's heap does not grow with the adapter.
     */
    public Path publish(Path root, String baseModel, QaloraConfig adapterConfig, CheckpointStore.Committed committed,
                        String configHash, Map<String, String> extraInfo) {
        int round = committed.round();
        java.util.List<Path> stateFiles = committed.stateFiles();
        Map<String, String> stateMetadata = Map.of("round", Integer.toString(round));
        // One committed file is copied as is; one part (an executor-averaged round of one key range) is not that file:
        // its name and identity are a part's, so it goes through StateParts like several parts.
        boolean copy = stateFiles.size() == 1 && stateFiles.get(0).getName().equals(CheckpointStore.STATE_FILE);
        String fileSha;
        Map<String, long[]> layout;
        try (StateParts parts = StateParts.open(storage, stateFiles)) {
            fileSha = copy ? committed.stateId() : parts.sha256OfOneFile(stateMetadata);
            layout = parts.layout();
        }
        String version = versionName(round, fileSha);
        Map<String, String> info = new LinkedHashMap<>(extraInfo);
        info.put("configHash", configHash);
        info.put("round", Integer.toString(round));
        info.put("globalStep", Long.toString(committed.manifest().globalStep()));
        info.put("adapterStateSha256", fileSha);
        info.put("baseModel", baseModel);
        info.put("maxShardBytes", Long.toString(maxShardBytes));
        HadoopPaths paths = storage.paths(); // the job's configuration, never this JVM's defaults
        Merger.Report[] report = new Merger.Report[1];
        Path published = new ModelPublisher(storage, hold, progress).publish(root, version, info, tmp -> {
            // The adapter's shapes come from config.json: the driver never loads the base's weights.
            LlamaDims dims = LlamaDims.of(LlamaConfig.read(baseModel, paths));
            Map<String, long[]> expected = AdapterState.shapesOf(dims, adapterConfig);
            checkLayout(layout, expected, stateFiles);
            String adapterDir = HadoopPaths.child(tmp.toString(), ADAPTER_DIR);
            try (StateParts parts = StateParts.open(storage, stateFiles)) {
                PeftAdapter.write(adapterDir, adapterConfig, expected, (t, out) -> parts.copyTo(t.name(), 0, out),
                        baseModel, paths);
            }
            report[0] = merge.run(baseModel, adapterDir, tmp.toString(), maxShardBytes);
            Path file = new Path(tmp, WarmStart.STATE_FILE);
            String sha;
            if (copy) {
                Path from = stateFiles.get(0);
                FileUtil.copy(storage.fs(from), from, storage.fs(file), file, false, storage.conf());
                sha = storage.sha256(file);
            } else {
                try (StateParts parts = StateParts.open(storage, stateFiles)) {
                    sha = parts.writeOneFile(storage, file, "_tmp-" + WarmStart.STATE_FILE, stateMetadata);
                }
            }
            if (!sha.equals(fileSha)) {
                throw new IOException(file + " (from " + stateFiles + ") has SHA-256 " + sha + ", expected " + fileSha);
            }
        });
        if (report[0] != null) {
            progress.accept(String.format(java.util.Locale.ROOT,
                    "merge: %d projections folded into %s; merged vs adapter logits relative error %.2e",
                    report[0].mergedProjections(), adapterConfig.plainLora() ? "float32 weights (W + s B A)"
                            : "float zero points", report[0].relativeLogitError()));
        }
        return published;
    }

    /** The committed state must hold exactly the adapter tensors config.json and the adapter settings call for. */
    private static void checkLayout(Map<String, long[]> layout, Map<String, long[]> expected, java.util.List<Path> files) {
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            long[] have = layout.get(e.getKey());
            if (have == null || !java.util.Arrays.equals(have, e.getValue())) {
                throw new IllegalStateException("the final state " + files + " does not fit the adapter of the base "
                        + "model: tensor " + e.getKey() + (have == null ? " is missing" : " has shape "
                        + java.util.Arrays.toString(have) + ", expected " + java.util.Arrays.toString(e.getValue())));
            }
        }
        if (layout.size() != expected.size()) {
            throw new IllegalStateException("the final state " + files + " has " + layout.size() + " tensors, the "
                    + "adapter of the base model " + expected.size());
        }
    }

    /** {@code v-r<round>-<first 8 hex digits of the final state's SHA-256>}: no clock, so reruns agree. */
    static String versionName(int round, String stateSha256) {
        return String.format("v-r%05d-%s", round, stateSha256.substring(0, 8));
    }
}
