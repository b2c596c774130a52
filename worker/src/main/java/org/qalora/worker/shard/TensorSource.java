package org.qalora.worker.shard;

import java.io.IOException;
import java.io.OutputStream;
import org.qalora.quant.safetensors.TensorInfo;

/** Produces the bytes of planned output tensors, one at a time (see {@link ShardedWrite}). */
public interface TensorSource extends AutoCloseable {
    /** The little-endian data of {@code planned}; its length must be {@code planned.byteSize()}. */
    byte[] bytes(TensorInfo planned) throws IOException;

    /**
     * Writes {@code planned}'s data to {@code out}; sources override it to stream a copied tensor in chunks instead
     * of holding it ({@code Checkpoint.copyTo}).
     */
    default void writeTo(TensorInfo planned, OutputStream out) throws IOException {
        out.write(bytes(planned));
    }

    @Override
    void close() throws IOException;
}
