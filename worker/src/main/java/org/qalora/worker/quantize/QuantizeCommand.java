package org.qalora.worker.quantize;

import java.io.PrintWriter;
import java.util.Map;
import java.util.concurrent.Callable;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.GptqConfig.CheckpointFormat;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.quantizer.GptqSolve;
import org.qalora.quant.quantizer.GptqDevice;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.ShardSize;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.shard.ShardedWrite;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code qalora quantize}: a dense HF LLaMA checkpoint in, a GPTQ checkpoint out (v2 zeros by default).
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"Quantize a dense HF LLaMA checkpoint (safetensors) to GPTQ format: group-wise, asymmetric by"
                + " default, round-to-nearest or GPTQ with calibration data.",
            "Writes OUT (which must not exist) atomically: model.safetensors (or shards + index), config.json with"
                + " quantization_config, quantize_config.json, and the tokenizer files of MODEL."})
public final class QuantizeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "dense HF checkpoint directory (local, file://, hdfs://, s3a://)")
    String model;

    @Option(names = "--bits", required = true, paramLabel = "B", description = "2, 3, 4 or 8")
    int bits;

    @Option(names = "--group-size", required = true, paramLabel = "G", description = "inputs per group (must divide every input dimension; -1 = whole rows)")
    int groupSize;

    @Option(names = "--method", defaultValue = "rtn", paramLabel = "rtn|gptq", description = "rtn (no data) or gptq (needs --calibration); default ${DEFAULT-VALUE}")
    String method;

    @Option(names = "--calibration", paramLabel = "FILE", description = "safetensors file with input_ids, I64/I32 [sequences, seq_len], for gptq")
    String calibration;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory; must not exist unless --overwrite")
    String out;

    @Option(names = "--overwrite", description = "replace --out if it exists (the new model is written first, then swapped in)")
    boolean overwrite;

    @Option(names = "--format", defaultValue = "gptq_v2", paramLabel = "gptq|gptq_v2", description = "zero-point format: gptq (v1, zero-1) or gptq_v2 (default)")
    String format;

    @Option(names = "--sym", description = "symmetric quantization (zero fixed at 2^(bits-1)); default asymmetric as in QA-LoRA")
    boolean sym;

    @Option(names = "--damp-percent", paramLabel = "F", defaultValue = "0.01", description = "GPTQ damping, fraction of the mean Hessian diagonal; default ${DEFAULT-VALUE}")
    double damp;

    @Option(names = "--static-groups", description = "GPTQ: compute all group parameters from the original weights up front")
    boolean staticGroups;

    @Option(names = "--act-order", description = "GPTQ: process columns by descending Hessian diagonal (requires --static-groups)")
    boolean actOrder;

    @Option(names = "--no-true-sequential", negatable = false, description = "GPTQ: take all seven Hessians of a layer from one pass")
    boolean noTrueSequential;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "D", description = "where GPTQ's calibration forward passes run: cpu, gpu (GPU 0) or gpu:N, in fp32; default ${DEFAULT-VALUE}")
    String device;

    @Option(names = "--gptq-solve", defaultValue = "auto", paramLabel = GptqSolve.CHOICES, description = "where GPTQ's inverse-Hessian solve (Cholesky, inverse, Cholesky; float64) runs, and with it the column-by-column quantization: cpu (blocked, all cores), gpu (cuSOLVER and the GPTQ column kernels on the --device GPU, else GPU 0) or auto (gpu when --device is a GPU and both are usable on it, else cpu); the factors agree within 1e-9 (relative), not bit for bit (the column stages give the same bits on either) (one 7B layer: 2.6x faster on an H100 than on 16 CPU cores); default ${DEFAULT-VALUE}")
    String gptqSolve;

    @Option(names = "--max-shard-size", defaultValue = ShardSize.DEFAULT, paramLabel = "SIZE", description = "largest weights file, as HF spells it (5GB, 500MB, 2GiB, or bytes); more is written as model-0000k-of-0000n.safetensors + model.safetensors.index.json; default ${DEFAULT-VALUE}")
    String maxShardSize;

    /** Exit code for bad input or I/O failures, reported as one line (as the worker's other commands do). */
    static final int EXIT_BAD_INPUT = 2;

    @Override
    public Integer call() throws Exception {
        try {
            quantize();
            return 0;
        } catch (IllegalArgumentException | IllegalStateException | java.io.IOException | java.io.UncheckedIOException e) {
            PrintWriter err = spec.commandLine().getErr();
            err.println("error: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }

    private void quantize() throws java.io.IOException {
        PrintWriter log = spec.commandLine().getOut();
        ModelQuantizer.Method m = switch (method) {
            case "rtn" -> ModelQuantizer.Method.RTN;
            case "gptq" -> ModelQuantizer.Method.GPTQ;
            default -> throw new IllegalArgumentException("--method must be rtn or gptq, got " + method);
        };
        CheckpointFormat f = switch (format) {
            case "gptq" -> CheckpointFormat.GPTQ;
            case "gptq_v2" -> CheckpointFormat.GPTQ_V2;
            default -> throw new IllegalArgumentException("--format must be gptq or gptq_v2, got " + format
                    + " (float zeros are written by merge, not by quantize)");
        };
        // A malformed --device fails before any work (even with rtn, which ignores it); auto is the CPU here.
        String dev = Backends.resolve(device, null);
        GptqSolve.checkRequested(gptqSolve, "--gptq-solve");
        if (m == ModelQuantizer.Method.RTN && calibration != null) {
            throw new IllegalArgumentException("--calibration is only used by --method gptq");
        }
        GptqConfig gptq = new GptqConfig(bits, groupSize, sym, actOrder, staticGroups, damp, !noTrueSequential, f);
        long maxShardBytes = ShardSize.parse(maxShardSize, "--max-shard-size");
        HadoopPaths paths = HadoopPaths.defaults();
        boolean replace = paths.exists(out);
        if (replace && !overwrite) {
            throw new IllegalArgumentException("--out " + out + " already exists: choose a new directory, or pass "
                    + "--overwrite to replace it");
        }
        // Replacing: the new model is written beside the old one under a temporary name, which readers ignore, so a
        // failure leaves the old model whole.
        String target = !replace ? out : HadoopPaths.child(new org.apache.hadoop.fs.Path(paths.qualified(out))
                .getParent().toString(), "_tmp-replacing-" + java.util.UUID.randomUUID());
        // GPTQ's calibration forward passes run on --device, in fp32 (the Hessians want exact activations), opened
        // first so that an unusable GPU fails before any work; RTN needs no model at all.
        boolean calibrate = m == ModelQuantizer.Method.GPTQ;
        int threads = Runtime.getRuntime().availableProcessors();
        try (Backend backend = calibrate ? Backends.open(dev, Precision.FP32, threads) : null;
             Checkpoint source = Checkpoint.open(model, paths)) {
            LlamaConfig config = source.config();
            ModelQuantizer.validate(source, config, gptq);
            CalibrationData data = calibration == null ? null : CalibrationData.read(calibration, config.vocabSize(), paths);
            if (m == ModelQuantizer.Method.RTN) {
                // RTN is per projection: stream it, one projection in memory at a time (the same bytes as below).
                QuantizeLayout plan = QuantizeLayout.plan(source, gptq, maxShardBytes);
                paths.writeDirectoryAtomically(target, tmp -> ShardedWrite.writeAll(plan, tmp, paths, threads));
            } else {
                // Resolved once, before the first layer: every projection's factor comes from the same solver (and
                // its column stage runs on the same device; the CPU and GPU column stages give the same bits).
                int gpu = Math.max(0, Backends.gpuOrdinal(dev));
                GptqSolve solve = GptqSolve.resolve(gptqSolve,
                        !dev.equals("cpu") && GptqSolve.gpuUnusableReason(gpu) == null, "--gptq-solve");
                GptqDevice device = solve.device(gpu);
                log.printf("gptq: inverse-Hessian solve on %s, column stage on %s%n", device.solver(), device.columns());
                Map<String, QuantizedMatrix> quantized = ModelQuantizer.quantize(source, config, gptq, m, data, backend,
                        log, device);
                ModelQuantizer.write(source, config, gptq, quantized, target, maxShardBytes, paths);
            }
        }
        if (replace) {
            paths.delete(out);
            paths.commitDirectory(target, out);
        }
        log.printf("wrote %s: %d-bit, group size %d, %s, %s zeros%n", out, bits, groupSize, method, f.jsonName());
        log.flush();
    }
}
