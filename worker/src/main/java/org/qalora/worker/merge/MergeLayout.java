package org.qalora.worker.merge;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.ShardLayout;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;
import org.qalora.worker.shard.ShardedWrite;
import org.qalora.worker.shard.StateDictOrder;
import org.qalora.worker.shard.TensorSource;

/**
 * What a merged model will hold, decided from the base checkpoint's headers and config.json alone (no weight is
 * read): every output tensor's name, dtype and shape in state-dict order, split into shards by {@link ShardLayout}.
 * The merge tasks each write one shard from this plan, so they agree on file names and the index without talking
 * to each other, and the driver that makes the plan never loads a weight.
 *
 * <p>Output tensors, by {@link #role}:
 * <ul>
 *   <li>QA-LoRA: each GPTQ projection as {@code qalora_float_zeros} ({@code qweight} I32 as stored, {@code qzeros}
 *   F32 [G, O], {@code scales} F16 [G, O], {@code g_idx} I32 [I]), as {@code GptqCodec.write} stores it;
 *   <li>plain LoRA: each adapted projection's {@code .weight} in F32, same shape;
 *   <li>everything else copied as stored.
 * </ul>
 */
public final class MergeLayout implements ShardedWrite {
    private static final long serialVersionUID = 1L;
    private static final List<String> GPTQ_SUFFIXES = List.of(".qweight", ".qzeros", ".scales", ".g_idx");

    /** How a merge task produces an output tensor. */
    public enum Role { COPY, QUANTIZED_PROJECTION, FLOAT_PROJECTION }

    private final String sourceDir;
    private final String adapterDir;
    private final QaloraConfig adapter;
    private final ShardLayout shards;
    private final Set<String> quantizedPrefixes;
    private final int adaptedProjections;

    private MergeLayout(String sourceDir, String adapterDir, QaloraConfig adapter, ShardLayout shards,
                        Set<String> quantizedPrefixes, int adaptedProjections) {
        this.sourceDir = sourceDir;
        this.adapterDir = adapterDir;
        this.adapter = adapter;
        this.shards = shards;
        this.quantizedPrefixes = quantizedPrefixes;
        this.adaptedProjections = adaptedProjections;
    }

    /**
     * @param source        the base model (only its headers and config.json are read)
     * @param adapterDir    the PEFT adapter directory; only adapter_config.json is read here
     * @param maxShardBytes the largest shard ({@code --max-shard-size})
     */
    public static MergeLayout plan(Checkpoint source, String adapterDir, long maxShardBytes, HadoopPaths paths)
            throws IOException {
        QaloraConfig adapter = PeftAdapter.readConfig(adapterDir, paths);
        LlamaConfig config = source.config();
        LlamaDims dims = LlamaDims.of(config);
        String where = source.directory();
        if (!adapter.plainLora() && !config.isQuantized()) {
            throw new IllegalArgumentException(where + " is not group-quantized (config.json has no quantization_config):"
                    + " QA-LoRA merges into GPTQ zero points, so merge needs the quantized checkpoint the adapter was"
                    + " trained on");
        }
        if (adapter.plainLora() && config.isQuantized()) {
            throw new IllegalArgumentException(where + " is a GPTQ checkpoint but the adapter is plain LoRA"
                    + " (use_qalora false): plain LoRA merges into the float checkpoint it was trained on");
        }
        Set<String> quantized = new LinkedHashSet<>();
        int adapted = 0;
        for (int l = 0; l < dims.layers(); l++) {
            for (Projection p : Projection.values()) {
                String prefix = p.prefix(l);
                if (source.contains(prefix + ".qweight")) {
                    quantized.add(prefix);
                }
                if (!adapter.targets(p)) {
                    continue;
                }
                adapted++;
                String need = adapter.plainLora() ? prefix + ".weight" : prefix + ".qweight";
                if (!source.contains(need)) {
                    throw new FormatException(where + " has no tensor " + need + ", which the adapter adapts (target "
                            + p.shortName() + ", layer " + l + "): merge into the checkpoint the adapter was trained on");
                }
            }
        }
        checkAdapterTensors(adapterDir, adapter, dims, paths);
        MergeLayout probe = new MergeLayout(null, null, adapter, null, quantized, adapted);
        List<String> names = new ArrayList<>(source.names());
        names.sort(StateDictOrder.NAMES);
        List<TensorInfo> out = new ArrayList<>();
        Set<String> planned = new LinkedHashSet<>();
        for (String name : names) {
            Role role = probe.role(name);
            if (role == Role.QUANTIZED_PROJECTION) {
                String prefix = name.substring(0, name.lastIndexOf('.'));
                if (planned.add(prefix)) {
                    out.addAll(floatZerosTensors(source, prefix, config.quantization()));
                }
            } else if (role == Role.FLOAT_PROJECTION) {
                out.add(new TensorInfo(name, DType.F32, source.info(name).shape()));
            } else {
                out.add(source.info(name));
            }
        }
        return new MergeLayout(source.directory(), adapterDir, adapter, ShardLayout.plan(out, maxShardBytes), quantized,
                adapted);
    }

    /**
     * Every adapted projection's lora_A {@code [r, in / g]} and lora_B {@code [out, r]} is in adapter_model.safetensors
     * with that shape: read from its header only, so a wrong adapter is refused here, before any task starts.
     */
    private static void checkAdapterTensors(String adapterDir, QaloraConfig adapter, LlamaDims dims, HadoopPaths paths)
            throws IOException {
        String file = HadoopPaths.child(adapterDir, PeftAdapter.WEIGHTS_FILE);
        try (SafetensorsFile f = SafetensorsFile.open(file, paths)) {
            for (int l = 0; l < dims.layers(); l++) {
                for (Projection p : adapter.orderedTargets()) {
                    long r = adapter.rank(), in = p.inFeatures(dims) / adapter.groupSize(), out = p.outFeatures(dims);
                    for (String[] key : new String[][] {{PeftKeys.a(l, p), "[" + r + ", " + in + "]"},
                            {PeftKeys.b(l, p), "[" + out + ", " + r + "]"}}) {
                        if (!f.contains(key[0])) {
                            throw new FormatException(file + " has no tensor " + key[0] + " for " + p.prefix(l)
                                    + ", which adapter_config.json's target_modules adapts: the adapter file is"
                                    + " incomplete or belongs to another model");
                        }
                        TensorInfo t = f.info(key[0]);
                        if (!t.shapeString().equals(key[1])) {
                            throw new FormatException(file + ": tensor " + key[0] + " has shape " + t.shapeString()
                                    + " but this model and adapter_config.json (r " + r + ", qalora_group_size "
                                    + adapter.groupSize() + ") need " + key[1] + ": the adapter belongs to another"
                                    + " model or its config does not match its weights");
                        }
                    }
                }
            }
        }
    }

    /** The four tensors {@code GptqCodec.write} stores for a projection in the float-zeros format. */
    private static List<TensorInfo> floatZerosTensors(Checkpoint source, String prefix, GptqConfig q) throws IOException {
        TensorInfo qweight = source.info(prefix + ".qweight");
        if (qweight.dtype() != DType.I32 || qweight.rank() != 2) {
            throw new FormatException(source.directory() + ": tensor " + prefix + ".qweight is " + qweight
                    + ", expected I32 [in*bits/32, out]");
        }
        int out = qweight.dim(1);
        int in = (int) ((long) qweight.dim(0) * 32 / q.bits());
        int groups = in / q.groupSizeFor(in);
        return List.of(new TensorInfo(prefix + ".qweight", DType.I32, new long[] {PackedCodes.wordsFor(in, q.bits()), out}),
                new TensorInfo(prefix + ".qzeros", DType.F32, new long[] {groups, out}),
                new TensorInfo(prefix + ".scales", DType.F16, new long[] {groups, out}),
                new TensorInfo(prefix + ".g_idx", DType.I32, new long[] {in}));
    }

    /** The layer index of {@code model.layers.N.*}, else -1. */
    static int layerOf(String name) {
        return StateDictOrder.layerOf(name);
    }

    /** How the output tensor (or source tensor) {@code name} is produced. */
    public Role role(String name) {
        if (!adapter.plainLora()) {
            for (String suffix : GPTQ_SUFFIXES) {
                if (name.endsWith(suffix) && quantizedPrefixes.contains(name.substring(0, name.length() - suffix.length()))) {
                    return Role.QUANTIZED_PROJECTION;
                }
            }
            return Role.COPY;
        }
        int layer = layerOf(name);
        if (layer >= 0 && name.endsWith(".weight")) {
            for (Projection p : adapter.orderedTargets()) {
                if (name.equals(p.prefix(layer) + ".weight")) {
                    return Role.FLOAT_PROJECTION;
                }
            }
        }
        return Role.COPY;
    }

    public QaloraConfig adapter() { return adapter; }

    @Override
    public ShardLayout shards() { return shards; }

    /** Opens the base checkpoint and the adapter file for {@link ShardMerger}. */
    @Override
    public TensorSource open(HadoopPaths paths, int threads) throws IOException {
        return new ShardMerger(this, sourceDir, adapterDir, paths, threads);
    }

    @Override
    public void writeSmallFiles(String dir, HadoopPaths paths) throws IOException {
        MergeMetadata.write(this, sourceDir, dir, paths);
    }

    public String sourceDir() { return sourceDir; }

    public String adapterDir() { return adapterDir; }

    /** Projections that carry an adapter (the report's count). */
    public int adaptedProjections() { return adaptedProjections; }

    /** The layers whose tensors shard {@code i} holds (-1 for tensors outside the layers), for progress lines. */
    public String layersOf(int shard) {
        java.util.TreeSet<Integer> layers = new java.util.TreeSet<>();
        for (TensorInfo t : shards.shard(shard)) {
            layers.add(layerOf(t.name()));
        }
        return layers.toString();
    }
}
