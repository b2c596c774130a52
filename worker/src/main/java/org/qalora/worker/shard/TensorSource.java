package org.qalora.worker.shard;

import java.io.IOException;
import org.qalora.quant.safetensors.TensorInfo;

/** Produces the bytes of planned output tensors, one at a time (see {@link ShardedWrite}). */
public interface TensorSource extends AutoCloseable {
    /** The little-endian data of {@code planned}; its length must be {@code planned.byteSize()}. */
    byte[] bytes(TensorInfo planned) throws IOException;

    @Override
    void close() throws IOException;
}
