package org.qalora.worker.quantize;

import java.io.IOException;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.quantizer.RtnQuantizer;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.worker.shard.TensorSource;

/**
 * The tensors of a {@link QuantizeLayout}: a projection's four GPTQ tensors from its quantized matrix (RTN on its
 * float weight, read alone from the source; or the result a distributed GPTQ solve task left in the calibration work
 * directory), everything else copied. The last projection is kept, since its tensors are not adjacent
 * in a file (files order by dtype width): each is quantized at most twice per shard rather than held.
 */
final class QuantizedTensorSource implements TensorSource {
    /** The quantized matrix of projection {@code prefix} (its dense weight is {@code prefix + ".weight"}). */
    @FunctionalInterface
    interface Projections {
        QuantizedMatrix get(String prefix, Checkpoint source) throws IOException;
    }

    private final QuantizeLayout layout;
    private final Checkpoint source;
    private final Projections projections;
    private String cachedPrefix;
    private SafetensorsWriter cached;

    QuantizedTensorSource(QuantizeLayout layout, Checkpoint source, Projections projections) {
        this.layout = layout;
        this.source = source;
        this.projections = projections;
    }

    /** RTN of each projection's float weight. */
    static Projections rtn(org.qalora.quant.config.GptqConfig gptq) {
        RtnQuantizer rtn = new RtnQuantizer(gptq.bits(), gptq.groupSize(), gptq.sym());
        return (prefix, source) -> {
            String weight = prefix + ".weight";
            TensorInfo w = source.info(weight);
            return rtn.quantize(source.floats(weight), w.dim(0), w.dim(1), weight);
        };
    }

    /** A copied tensor is streamed in chunks (the embedding of a 7B model is 262 MB); projections are computed. */
    @Override
    public void writeTo(TensorInfo planned, java.io.OutputStream out) throws IOException {
        if (source.contains(planned.name()) && !ModelQuantizer.PROJECTION_WEIGHT.matcher(planned.name()).matches()) {
            source.copyTo(planned.name(), out);
        } else {
            out.write(bytes(planned));
        }
    }

    @Override
    public byte[] bytes(TensorInfo planned) throws IOException {
        String name = planned.name();
        if (source.contains(name) && !ModelQuantizer.PROJECTION_WEIGHT.matcher(name).matches()) {
            return source.bytes(name);
        }
        String prefix = name.substring(0, name.lastIndexOf('.'));
        if (!prefix.equals(cachedPrefix)) {
            cachedPrefix = null;
            cached = null; // let the previous projection go before this one is read
            QuantizedMatrix m = projections.get(prefix, source);
            SafetensorsWriter writer = new SafetensorsWriter();
            GptqCodec.write(writer, prefix, m, layout.gptq().format());
            cachedPrefix = prefix;
            cached = writer;
        }
        return cached.bytes(name);
    }

    @Override
    public void close() throws IOException {
        source.close();
    }
}
