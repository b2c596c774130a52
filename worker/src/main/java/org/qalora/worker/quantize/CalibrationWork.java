package org.qalora.worker.quantize;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.quantizer.GptqQuantizer;
import org.qalora.quant.quantizer.GptqSolve;
import org.qalora.quant.quantizer.HessianSum;
import org.qalora.quant.quantizer.GptqDevice;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.LinearWeight;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;

/**
 * The executor side of distributed GPTQ calibration (the driver's {@code GptqJob} schedules it): what one task
 * computes, and the work directory through which tasks hand results to later stages. Layer by layer, stage by
 * stage (true-sequential), as {@link LayerwiseGptq} does in one process, with the same {@link LayerCalibrator} and
 * the same canonical Hessian order, so the quantized projections are bit for bit the same:
 * <ul>
 *   <li>{@link #hessianTask}: one calibration chunk; writes {@code X^T X} of the chunk per distinct input of the
 *   stage ({@code partials/}), float64;
 *   <li>{@link #solveTask}: one projection; adds the chunks' partials in chunk order, factorises, runs GPTQ on the
 *   dense weight, writes the quantized projection ({@code projections/}).
 * </ul>
 * A chunk's hidden states entering layer {@code l} are kept in this JVM between stages ({@link #HIDDEN}) and also
 * written to {@code hidden/}, so a task that lands on another executor (or after an executor loss) reads them
 * instead; if that file is missing too, they are recomputed from the previous layer's. Every file is written to a
 * temporary name and renamed, and every task's output is a function of its inputs, so a retried task writes the
 * same bytes. Calibration runs on the CPU in fp32, as single-process GPTQ does.
 *
 * @param dir       the work directory (under the run directory; removed by the driver when the model is written)
 * @param source    the dense model directory
 * @param gptq      the quantization settings
 * @param sequences calibration sequences in {@link #calibrationFile()}
 * @param runId     identifies this calibration, so that a JVM never reuses hidden states of another one
 * @param solve     where every solve task computes its inverse-Hessian factor, decided once for the whole run
 *                  ({@code auto} resolved before this record is made), so that all projections are solved alike;
 *                  a task told {@code gpu} on an executor without a usable GPU fails rather than use the CPU
 */
public record CalibrationWork(String dir, String source, GptqConfig gptq, int sequences, String runId,
                              GptqSolve solve) implements Serializable {

    public CalibrationWork {
        java.util.Objects.requireNonNull(solve, "solve");
    }

    /** With the inverse-Hessian factors on the CPU. */
    public CalibrationWork(String dir, String source, GptqConfig gptq, int sequences, String runId) {
        this(dir, source, gptq, sequences, runId, GptqSolve.CPU);
    }

    /** Per JVM: chunk (of a run) -> the layer whose inputs are held, and those inputs {@code [sequences][T * H]}. */
    private static final Map<String, Held> HIDDEN = new ConcurrentHashMap<>();

    private record Held(int layer, float[][] hidden) {}

    /** Where a calibration task found its chunk's hidden states. */
    public enum HiddenFrom { MEMORY, FILE, COMPUTED }

    public int chunks() { return CalibrationChunks.count(sequences); }

    /** The calibration token ids, {@code input_ids [sequences, T]} (see {@link CalibrationData}). */
    public String calibrationFile() { return HadoopPaths.child(dir, "calibration.safetensors"); }

    String hiddenFile(int layer, int chunk) {
        return HadoopPaths.child(dir, String.format(Locale.ROOT, "hidden/layer-%03d-chunk-%02d.f32", layer, chunk));
    }

    String partialFile(int layer, int stage, Projection input, int chunk) {
        return HadoopPaths.child(dir, String.format(Locale.ROOT, "partials/layer-%03d-stage-%d-%s-chunk-%02d.f64",
                layer, stage, input.name().toLowerCase(Locale.ROOT), chunk));
    }

    String projectionFile(String prefix) {
        return HadoopPaths.child(dir, "projections/" + prefix + ".qm");
    }

    /** The stages of a layer, in order. */
    public List<Set<Projection>> stages() {
        return LayerCalibrator.stages(gptq.trueSequential());
    }

    /** One calibration task: chunk {@code chunk}'s partial Hessians of stage {@code stage} of layer {@code layer}. */
    public static HiddenFrom hessianTask(CalibrationWork work, int layer, int stage, int chunk, HadoopPaths paths,
                                         int threads) throws IOException {
        HIDDEN.keySet().removeIf(k -> !k.startsWith(work.runId + "/")); // another calibration's, never needed again
        CalibrationContext context = CalibrationContext.take(work, paths, threads);
        // The last stage of the last layer: nothing later needs this chunk's hidden states or the context.
        boolean last = layer == context.parts.config.numHiddenLayers() - 1 && stage == work.stages().size() - 1;
        boolean ok = false;
        try {
            HiddenFrom[] from = new HiddenFrom[1];
            float[][] hidden = work.hiddenEntering(layer, chunk, context, paths, from);
            Set<Projection> done = EnumSet.noneOf(Projection.class);
            for (int s = 0; s < stage; s++) {
                done.addAll(work.stages().get(s));
            }
            Map<Projection, LinearWeight> weights = context.weights(work, layer, done, paths);
            for (Map.Entry<Projection, HessianSum> e
                    : context.calibrator.hessians(layer, weights, work.stages().get(stage), hidden).entrySet()) {
                paths.writeAtomically(work.partialFile(layer, stage, e.getKey(), chunk), out -> e.getValue().write(out));
            }
            ok = true;
            return from[0];
        } finally {
            if (last) {
                HIDDEN.remove(work.runId + "/" + chunk);
            }
            if (ok && !last) {
                CalibrationContext.release(context);
            } else {
                context.close();
            }
        }
    }

    /** {@link #solveTask(CalibrationWork, int, int, Projection, HadoopPaths, String)} for a task given no GPU. */
    public static void solveTask(CalibrationWork work, int layer, int stage, Projection p, HadoopPaths paths)
            throws IOException {
        solveTask(work, layer, stage, p, paths, null);
    }

    /**
     * One solve task: GPTQ of projection {@code p} of layer {@code layer}, from the chunks' partials of its stage.
     *
     * @param taskGpu the Spark task's GPU ({@code gpu:N}), or null (or {@code cpu}) when it was given none: with
     *                {@link #solve} {@code GPU} the factor is computed on that GPU, else on GPU 0 (which GPU does not change the bits; a GPU model or cuSOLVER
     *                version could)
     */
    public static void solveTask(CalibrationWork work, int layer, int stage, Projection p, HadoopPaths paths,
                                 String taskGpu) throws IOException {
        // The devices first: a GPU that was asked for but is unusable here fails before the partials are read.
        GptqDevice device = work.solve.device(taskGpu == null ? 0 : Math.max(0, Backends.gpuOrdinal(taskGpu)));
        Set<Projection> current = work.stages().get(stage);
        Projection input = LayerCalibrator.inputOf(p, current);
        HessianSum sum = null;
        for (int c = 0; c < work.chunks(); c++) { // chunk order: the canonical sum, as LayerwiseGptq
            String file = work.partialFile(layer, stage, input, c);
            HessianSum partial;
            try (InputStream in = paths.open(file)) {
                partial = HessianSum.read(in, file);
            }
            if (sum == null) {
                sum = new HessianSum(partial.columns());
            }
            sum.plus(partial);
        }
        String prefix = p.prefix(layer);
        float[] dense;
        LlamaDims d;
        try (Checkpoint checkpoint = Checkpoint.open(work.source, paths)) {
            d = ModelParts.dims(checkpoint.config());
            dense = checkpoint.floats(prefix + ".weight");
        }
        GptqQuantizer quantizer = LayerwiseGptq.quantizer(work.gptq, device);
        QuantizedMatrix q = quantizer.quantize(dense, p.outFeatures(d), p.inFeatures(d),
                quantizer.prepare(sum.toHessian(), prefix), prefix);
        paths.writeAtomically(work.projectionFile(prefix), out -> QuantizedMatrixFile.write(q, out));
    }

    /** A quantized projection a solve task wrote. */
    public QuantizedMatrix readProjection(String prefix, HadoopPaths paths) throws IOException {
        String file = projectionFile(prefix);
        try (InputStream in = paths.open(file)) {
            return QuantizedMatrixFile.read(in, file);
        }
    }

    /** Forgets this JVM's hidden states of this calibration (the driver's last job calls it on every executor). */
    public void forget() {
        HIDDEN.keySet().removeIf(k -> k.startsWith(runId + "/"));
    }

    /** Chunk {@code chunk}'s hidden states entering {@code layer}: held here, else from its file, else computed. */
    private float[][] hiddenEntering(int layer, int chunk, CalibrationContext context, HadoopPaths paths,
                                     HiddenFrom[] from) throws IOException {
        String key = runId + "/" + chunk;
        Held held = HIDDEN.get(key);
        if (held != null && held.layer == layer) {
            from[0] = HiddenFrom.MEMORY;
            return held.hidden;
        }
        String file = hiddenFile(layer, chunk);
        float[][] hidden;
        from[0] = HiddenFrom.FILE;
        if (paths.exists(file)) {
            try (InputStream in = paths.open(file)) {
                hidden = readHidden(in, file);
            }
        } else {
            from[0] = HiddenFrom.COMPUTED;
            if (layer == 0) {
                int first = CalibrationChunks.start(sequences, chunk);
                int end = CalibrationChunks.start(sequences, chunk + 1);
                hidden = context.parts.embed(new CalibrationData(Arrays.copyOfRange(context.data.ids(), first, end)));
            } else {
                hidden = hiddenEntering(layer - 1, chunk, context, paths, new HiddenFrom[1]);
                hidden = hidden.clone(); // advance replaces the rows; the held array of layer - 1 stays intact
                Map<Projection, LinearWeight> finished =
                        context.weights(this, layer - 1, EnumSet.allOf(Projection.class), paths);
                context.calibrator.advance(layer - 1, finished, hidden);
            }
            float[][] written = hidden;
            paths.writeAtomically(file, out -> writeHidden(written, out));
        }
        HIDDEN.put(key, new Held(layer, hidden)); // replaces the previous layer's: one layer per chunk held
        return hidden;
    }

    static void writeHidden(float[][] hidden, java.io.OutputStream out) throws IOException {
        DataOutputStream data = new DataOutputStream(out);
        data.writeInt(hidden.length);
        data.writeInt(hidden.length == 0 ? 0 : hidden[0].length);
        for (float[] row : hidden) {
            ByteBuffer b = ByteBuffer.allocate(4 * row.length).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(row);
            data.write(b.array());
        }
        data.flush();
    }

    static float[][] readHidden(InputStream in, String where) throws IOException {
        DataInputStream data = new DataInputStream(in);
        int rows = data.readInt();
        int length = data.readInt();
        if (rows < 0 || length < 0) {
            throw new IOException(where + ": corrupt hidden-state file (" + rows + " x " + length + ")");
        }
        float[][] hidden = new float[rows][length];
        byte[] bytes = new byte[4 * length];
        for (float[] row : hidden) {
            data.readFully(bytes);
            ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(row);
        }
        return hidden;
    }
}
