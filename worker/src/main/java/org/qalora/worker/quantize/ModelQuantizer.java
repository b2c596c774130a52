package org.qalora.worker.quantize;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.quantizer.GptqDevice;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.quantizer.RtnQuantizer;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;

/**
 * Quantizes a dense HF LLaMA checkpoint into a GPTQ checkpoint directory: every decoder projection becomes
 * {@code qweight/qzeros/scales/g_idx} (see GptqCodec), everything else (embeddings, norms, lm_head) is copied
 * byte for byte, config.json gains {@code quantization_config}, quantize_config.json is written beside it, and
 * tokenizer and generation files are copied. The directory appears complete or not at all.
 */
public final class ModelQuantizer {
    /** Files copied unchanged from the source model when present. */
    public static final List<String> SIDE_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "tokenizer.model", "generation_config.json");
    /** HF's default max_shard_size. */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;

    static final Pattern PROJECTION_WEIGHT =
            Pattern.compile("model\\.layers\\.\\d+\\.(self_attn\\.[qkvo]_proj|mlp\\.(gate|up|down)_proj)\\.weight");

    public enum Method { RTN, GPTQ }

    private ModelQuantizer() {}

    /**
     * Checks everything that can be checked before any work: the source is dense, bits and group size fit every
     * projection. Throws with the offending file, tensor or option named.
     */
    static void validate(Checkpoint source, LlamaConfig config, GptqConfig gptq) throws FormatException {
        if (config.isQuantized()) {
            throw new FormatException(source.directory() + "/config.json already has a quantization_config: quantize the"
                    + " original (dense) model instead");
        }
        PackedCodes.checkBits(gptq.bits());
        LlamaDims d = ModelParts.dims(config);
        for (Projection p : Projection.values()) {
            int in = p.inFeatures(d);
            int out = p.outFeatures(d);
            int g = gptq.groupSizeFor(in);
            if (in % g != 0) {
                throw new IllegalArgumentException("--group-size " + g + " does not divide the input dimension " + in
                        + " of " + p.prefix(0) + "; " + org.qalora.quant.GroupSizes.hint(in));
            }
            if (in % 32 != 0 || out % 32 != 0) {
                throw new IllegalArgumentException(p.prefix(0) + " is [" + out + ", " + in + "], not a multiple of 32 in"
                        + " both dimensions, which the GPTQ format needs");
            }
        }
    }

    /** {@link #quantize(Checkpoint, LlamaConfig, GptqConfig, Method, CalibrationData, Backend, PrintWriter,
     * GptqDevice)} with GPTQ's inverse-Hessian factor and column stage on the CPU. */
    public static Map<String, QuantizedMatrix> quantize(Checkpoint source, LlamaConfig config, GptqConfig gptq,
                                                        Method method, CalibrationData calibration, Backend backend,
                                                        PrintWriter log) throws IOException {
        return quantize(source, config, gptq, method, calibration, backend, log, GptqDevice.CPU);
    }

    /**
     * Quantizes every projection; GPTQ needs calibration data and a backend for the forward passes.
     *
     * @param device where GPTQ's inverse-Hessian factors are computed (every projection of the run on the same one) and
     *               where its column stage runs
     */
    public static Map<String, QuantizedMatrix> quantize(Checkpoint source, LlamaConfig config, GptqConfig gptq,
                                                        Method method, CalibrationData calibration, Backend backend,
                                                        PrintWriter log, GptqDevice device) throws IOException {
        validate(source, config, gptq);
        if (method == Method.RTN) {
            RtnQuantizer rtn = new RtnQuantizer(gptq.bits(), gptq.groupSize(), gptq.sym());
            Map<String, QuantizedMatrix> result = new LinkedHashMap<>();
            LlamaDims d = ModelParts.dims(config);
            for (int l = 0; l < config.numHiddenLayers(); l++) {
                for (Projection p : Projection.values()) {
                    String name = p.prefix(l) + ".weight";
                    if (!source.contains(name)) {
                        throw new FormatException(source.directory() + ": tensor " + name + " is missing from the checkpoint");
                    }
                    var info = source.info(name);
                    if (!info.hasShape(p.outFeatures(d), p.inFeatures(d))) {
                        throw new FormatException(source.directory() + ": tensor " + name + " has shape " + info.shapeString()
                                + " but config.json implies [" + p.outFeatures(d) + ", " + p.inFeatures(d) + "]");
                    }
                    result.put(p.prefix(l), rtn.quantize(source.floats(name), p.outFeatures(d), p.inFeatures(d), name));
                }
                log.printf("rtn: layer %d/%d quantized%n", l + 1, config.numHiddenLayers());
                log.flush();
            }
            return result;
        }
        if (calibration == null) {
            throw new IllegalArgumentException("--method gptq needs --calibration FILE (safetensors with input_ids [n, seq])");
        }
        return LayerwiseGptq.run(new ModelParts(source, config, backend), gptq, calibration, log, null, device)
                .quantized();
    }

    /**
     * Writes the quantized checkpoint directory {@code out} (which must not exist) atomically: built under a
     * temporary sibling name, renamed when complete.
     */
    public static void write(Checkpoint source, LlamaConfig config, GptqConfig gptq, Map<String, QuantizedMatrix> quantized,
                             String out, long maxShardBytes, HadoopPaths paths) throws IOException {
        SafetensorsWriter writer = new SafetensorsWriter();
        for (String name : source.names()) {
            if (PROJECTION_WEIGHT.matcher(name).matches()) {
                String prefix = name.substring(0, name.length() - ".weight".length());
                QuantizedMatrix m = quantized.get(prefix);
                if (m == null) {
                    throw new IllegalStateException("projection " + prefix + " was not quantized");
                }
                GptqCodec.write(writer, prefix, m, gptq.format());
            } else {
                writer.copy(source, name);
            }
        }
        LlamaConfig quantizedConfig = config.withQuantization(gptq);
        paths.writeDirectoryAtomically(out, tmp -> {
            writer.writeCheckpoint(tmp, maxShardBytes, paths);
            quantizedConfig.write(tmp, paths);
            for (String file : SIDE_FILES) {
                String from = HadoopPaths.child(source.directory(), file);
                if (paths.exists(from)) {
                    byte[] bytes = paths.readAllBytes(from);
                    paths.writeAtomically(HadoopPaths.child(tmp, file), o -> o.write(bytes));
                }
            }
        });
    }
}
