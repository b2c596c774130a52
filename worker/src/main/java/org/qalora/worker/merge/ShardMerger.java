package org.qalora.worker.merge;

import java.io.IOException;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.PeftKeys;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.model.LlamaDims;
import org.qalora.worker.model.Projection;
import org.qalora.worker.shard.TensorSource;

/**
 * Writes one shard of a merged model ({@link MergeLayout}) by streaming: the shard's header comes from the plan,
 * then each tensor is read from the base checkpoint (only that tensor, or the one projection it belongs to, plus
 * that projection's lora_A / lora_B from the adapter file), folded, written and let go. Peak memory is about one
 * projection, whatever the shard or model size. The bytes depend only on the inputs (no clock, no thread count), so
 * a retried task writes the same file.
 *
 * <p>A projection's four GPTQ tensors are not adjacent in a file (files order tensors by dtype width), so the last
 * folded projection is kept: each projection is folded at most twice per shard, which costs far less than
 * holding a shard's projections (the fold is {@code r G O} multiply-adds).
 */
public final class ShardMerger implements TensorSource {
    private final MergeLayout layout;
    private final Checkpoint source;
    private final SafetensorsFile adapterWeights;
    private final LlamaDims dims;
    private final Backend backend;   // plain LoRA's B A product; null for QA-LoRA
    private String cachedPrefix;
    private SafetensorsWriter cachedTensors;

    /**
     * @param sourceDir  the base model the layout was planned from (single file or sharded)
     * @param adapterDir a PEFT adapter directory (adapter_model.safetensors is read tensor by tensor)
     * @param threads    CPU threads for plain LoRA's product (the result does not depend on it)
     */
    ShardMerger(MergeLayout layout, String sourceDir, String adapterDir, HadoopPaths paths, int threads)
            throws IOException {
        this.layout = layout;
        this.source = Checkpoint.open(sourceDir, paths);
        try {
            this.adapterWeights = SafetensorsFile.open(HadoopPaths.child(adapterDir, PeftAdapter.WEIGHTS_FILE), paths);
            this.dims = LlamaDims.of(source.config());
        } catch (IOException | RuntimeException e) {
            source.close();
            throw e;
        }
        this.backend = layout.adapter().plainLora() ? Backends.open("cpu", Precision.FP32, threads) : null;
    }

    /** A copied tensor is streamed in chunks (the embedding of a 7B model is 262 MB); others are computed. */
    @Override
    public void writeTo(TensorInfo planned, java.io.OutputStream out) throws IOException {
        if (layout.role(planned.name()) == MergeLayout.Role.COPY) {
            source.copyTo(planned.name(), out);
        } else {
            out.write(bytes(planned));
        }
    }

    /** The merged model's data for one planned tensor. */
    @Override
    public byte[] bytes(TensorInfo planned) throws IOException {
        String name = planned.name();
        return switch (layout.role(name)) {
            case COPY -> source.bytes(name);
            case QUANTIZED_PROJECTION -> quantizedProjection(name.substring(0, name.lastIndexOf('.'))).bytes(name);
            case FLOAT_PROJECTION -> floatProjection(name);
        };
    }

    /** The projection's tensors in the float-zeros format, folded if the adapter targets it. */
    private SafetensorsWriter quantizedProjection(String prefix) throws IOException {
        if (prefix.equals(cachedPrefix)) {
            return cachedTensors;
        }
        cachedPrefix = null;
        cachedTensors = null; // let the previous projection go before this one is read: one projection at a time
        GptqConfig q = source.config().quantization();
        QuantizedMatrix m = GptqCodec.read(source, prefix, q);
        int layer = MergeLayout.layerOf(prefix);
        Projection p = projectionOf(prefix, layer);
        if (layout.adapter().targets(p)) {
            m = ZeroPointMerge.merge(m, adapterTensor(PeftKeys.a(layer, p), prefix), adapterTensor(PeftKeys.b(layer, p),
                    prefix), layout.adapter(), prefix);
        }
        SafetensorsWriter w = new SafetensorsWriter();
        GptqCodec.write(w, prefix, m, GptqConfig.CheckpointFormat.QALORA_FLOAT_ZEROS);
        cachedPrefix = prefix;
        cachedTensors = w;
        return w;
    }

    /** {@code W + s B A} in F32 ({@link LoraMerge}). */
    private byte[] floatProjection(String name) throws IOException {
        String prefix = name.substring(0, name.length() - ".weight".length());
        int layer = MergeLayout.layerOf(prefix);
        Projection p = projectionOf(prefix, layer);
        float[] merged = LoraMerge.merge(backend, source.floats(name), adapterTensor(PeftKeys.a(layer, p), prefix),
                adapterTensor(PeftKeys.b(layer, p), prefix), p.outFeatures(dims), p.inFeatures(dims), layout.adapter(), name);
        return new SafetensorsWriter().addFloats(name, DType.F32, merged, source.info(name).shape()).bytes(name);
    }

    private float[] adapterTensor(String key, String prefix) throws IOException {
        if (!adapterWeights.contains(key)) {
            throw new FormatException(adapterWeights.location() + " has no tensor " + key + " for " + prefix
                    + ", which adapter_config.json's target_modules adapts: the adapter file is incomplete or belongs to"
                    + " another model");
        }
        return adapterWeights.floats(key);
    }

    private static Projection projectionOf(String prefix, int layer) {
        for (Projection p : Projection.values()) {
            if (prefix.equals(p.prefix(layer))) {
                return p;
            }
        }
        throw new IllegalStateException(prefix + " is not a LLaMA projection");
    }

    @Override
    public void close() throws IOException {
        try {
            if (backend != null) {
                backend.close();
            }
            adapterWeights.close();
        } finally {
            source.close();
        }
    }
}
