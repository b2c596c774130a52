package org.qalora.worker.quantize;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.ShardLayout;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;
import org.qalora.worker.shard.ShardedWrite;
import org.qalora.worker.shard.StateDictOrder;
import org.qalora.worker.shard.TensorSource;

/**
 * The RTN-quantized model planned from a dense checkpoint's headers and config.json alone: each decoder
 * projection's {@code .weight} becomes {@code qweight / qzeros / scales / g_idx} in the config's checkpoint format
 * (as {@code GptqCodec.write} stores them), everything else is copied, in HF state-dict order, split by
 * {@link ShardLayout}. Each shard is then written by {@link QuantizedTensorSource}, one projection at a time, so
 * that quantizing a 13 GB base needs neither the driver nor a task to hold it. The projections are RTN's, computed
 * as the shard is written, or ({@link #withGptq}) the results distributed GPTQ calibration left in its work
 * directory ({@link CalibrationWork}).
 */
public final class QuantizeLayout implements ShardedWrite {
    private static final long serialVersionUID = 1L;

    private final String sourceDir;
    private final GptqConfig gptq;
    private final ShardLayout shards;
    private final CalibrationWork gptqResults; // null: RTN

    private QuantizeLayout(String sourceDir, GptqConfig gptq, ShardLayout shards, CalibrationWork gptqResults) {
        this.sourceDir = sourceDir;
        this.gptq = gptq;
        this.shards = shards;
        this.gptqResults = gptqResults;
    }

    /** The same layout, its projections taken from {@code work}'s finished GPTQ solves instead of RTN. */
    public QuantizeLayout withGptq(CalibrationWork work) {
        return new QuantizeLayout(sourceDir, gptq, shards, work);
    }

    /** Checks the source against {@code gptq} (as {@link ModelQuantizer} does) and plans the output. */
    public static QuantizeLayout plan(Checkpoint source, GptqConfig gptq, long maxShardBytes) throws IOException {
        LlamaConfig config = source.config();
        ModelQuantizer.validate(source, config, gptq);
        LlamaDims d = ModelParts.dims(config);
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            for (Projection p : Projection.values()) {
                String name = p.prefix(l) + ".weight";
                if (!source.contains(name)) {
                    throw new FormatException(source.directory() + ": tensor " + name + " is missing from the checkpoint");
                }
                if (!source.info(name).hasShape(p.outFeatures(d), p.inFeatures(d))) {
                    throw new FormatException(source.directory() + ": tensor " + name + " has shape "
                            + source.info(name).shapeString() + " but config.json implies [" + p.outFeatures(d) + ", "
                            + p.inFeatures(d) + "]");
                }
            }
        }
        List<String> names = new ArrayList<>(source.names());
        names.sort(StateDictOrder.NAMES);
        List<TensorInfo> out = new ArrayList<>();
        for (String name : names) {
            if (!ModelQuantizer.PROJECTION_WEIGHT.matcher(name).matches()) {
                out.add(source.info(name));
                continue;
            }
            TensorInfo w = source.info(name);
            String prefix = name.substring(0, name.length() - ".weight".length());
            int o = w.dim(0), in = w.dim(1), bits = gptq.bits(), groups = in / gptq.groupSizeFor(in);
            boolean floatZeros = gptq.format() == GptqConfig.CheckpointFormat.QALORA_FLOAT_ZEROS;
            out.add(new TensorInfo(prefix + ".qweight", DType.I32, new long[] {PackedCodes.wordsFor(in, bits), o}));
            out.add(floatZeros ? new TensorInfo(prefix + ".qzeros", DType.F32, new long[] {groups, o})
                    : new TensorInfo(prefix + ".qzeros", DType.I32, new long[] {groups, PackedCodes.wordsFor(o, bits)}));
            out.add(new TensorInfo(prefix + ".scales", DType.F16, new long[] {groups, o}));
            out.add(new TensorInfo(prefix + ".g_idx", DType.I32, new long[] {in}));
        }
        return new QuantizeLayout(source.directory(), gptq, ShardLayout.plan(out, maxShardBytes), null);
    }

    @Override
    public ShardLayout shards() { return shards; }

    GptqConfig gptq() { return gptq; }

    @Override
    public TensorSource open(HadoopPaths paths, int threads) throws IOException {
        CalibrationWork work = gptqResults;
        QuantizedTensorSource.Projections projections = work == null ? QuantizedTensorSource.rtn(gptq)
                : (prefix, source) -> work.readProjection(prefix, paths);
        return new QuantizedTensorSource(this, Checkpoint.open(sourceDir, paths), projections);
    }

    /** config.json with quantization_config (and quantize_config.json), the side files, the index when sharded. */
    @Override
    public void writeSmallFiles(String dir, HadoopPaths paths) throws IOException {
        LlamaConfig.read(sourceDir, paths).withQuantization(gptq).write(dir, paths);
        for (String file : ModelQuantizer.SIDE_FILES) {
            String from = HadoopPaths.child(sourceDir, file);
            if (paths.exists(from)) {
                byte[] bytes = paths.readAllBytes(from);
                paths.writeAtomically(HadoopPaths.child(dir, file), o -> o.write(bytes));
            }
        }
        if (shards.sharded()) {
            byte[] index = shards.indexJson();
            paths.writeAtomically(HadoopPaths.child(dir, Checkpoint.INDEX_FILE), o -> o.write(index));
        }
    }
}
