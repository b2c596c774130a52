package org.qalora.worker.quantize;

import java.io.IOException;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;

/**
 * What a calibration task needs open, kept in the executor JVM between the tasks of one calibration
 * ({@link CalibrationWork}): the dense checkpoint, a CPU backend, the layer norms, the calibration ids, and the
 * current layer's seven projections as they stand (dense until quantized). A calibration runs a few hundred short
 * tasks; opening all of this per task cost more than the tasks' arithmetic on small models.
 *
 * <p>Not thread-safe: each concurrent task takes its own context from an idle pool ({@link #take}) and gives it
 * back ({@link #release}). A JVM keeps the contexts of one calibration: a task of its last stage closes its own,
 * and the first task of another run closes any left idle.
 */
final class CalibrationContext implements AutoCloseable {
    private static final Map<String, ConcurrentLinkedQueue<CalibrationContext>> IDLE = new ConcurrentHashMap<>();

    final String runId;
    final Checkpoint checkpoint;
    final CpuBackend backend;
    final ModelParts parts;
    final CalibrationData data;
    final LayerCalibrator calibrator;
    private int layer = -1;
    private final Map<Projection, LinearWeight> weights = new EnumMap<>(Projection.class);
    private final Set<Projection> quantized = EnumSet.noneOf(Projection.class);

    private CalibrationContext(CalibrationWork work, HadoopPaths paths, int threads) throws IOException {
        this.runId = work.runId();
        this.checkpoint = Checkpoint.open(work.source(), paths);
        this.backend = new CpuBackend(threads);
        this.parts = new ModelParts(checkpoint, checkpoint.config(), backend);
        this.data = CalibrationData.read(work.calibrationFile(), parts.config.vocabSize(), paths);
        this.calibrator = new LayerCalibrator(parts, data.seqLen());
    }

    /** An idle context of {@code work}'s run, or a new one; closes the idle contexts of other runs. */
    static CalibrationContext take(CalibrationWork work, HadoopPaths paths, int threads) throws IOException {
        for (String other : IDLE.keySet()) {
            if (!other.equals(work.runId())) {
                ConcurrentLinkedQueue<CalibrationContext> stale = IDLE.remove(other);
                CalibrationContext c;
                while (stale != null && (c = stale.poll()) != null) {
                    c.close();
                }
            }
        }
        CalibrationContext idle = IDLE.computeIfAbsent(work.runId(), k -> new ConcurrentLinkedQueue<>()).poll();
        return idle != null ? idle : new CalibrationContext(work, paths, threads);
    }

    /** Gives a context back after a task that succeeded (a failed task's context is closed instead). */
    static void release(CalibrationContext context) {
        IDLE.computeIfAbsent(context.runId, k -> new ConcurrentLinkedQueue<>()).add(context);
    }

    /**
     * Layer {@code layer}'s projections with those in {@code done} quantized (read from the work directory once
     * per context) and the rest dense (uploaded once per layer).
     */
    Map<Projection, LinearWeight> weights(CalibrationWork work, int layer, Set<Projection> done, HadoopPaths paths)
            throws IOException {
        if (this.layer != layer || !done.containsAll(quantized)) {
            weights.clear();
            quantized.clear();
            LlamaDims d = ModelParts.dims(parts.config);
            for (Projection p : Projection.values()) {
                weights.put(p, backend.denseWeight(backend.upload(parts.projectionWeight(layer, p), p.outFeatures(d),
                        p.inFeatures(d))));
            }
            this.layer = layer;
        }
        for (Projection p : done) {
            if (quantized.add(p)) {
                weights.put(p, backend.quantizedWeight(work.readProjection(p.prefix(layer), paths)));
            }
        }
        return new EnumMap<>(weights);
    }

    @Override
    public void close() throws IOException {
        try {
            backend.close();
        } finally {
            checkpoint.close();
        }
    }
}
