package org.qalora.quant.safetensors;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Writes one safetensors file whose tensors are known by name, dtype and shape before any of their data exists:
 * the header first, then each tensor's bytes, asked for one at a time. A writer of a multi-gigabyte shard so holds
 * one tensor in memory, not the shard ({@link SafetensorsWriter} holds them all). The bytes are exactly those
 * {@link SafetensorsWriter} writes for the same tensors (same order, same header), so either may write a shard.
 */
public final class SafetensorsStreamWriter {
    private SafetensorsStreamWriter() {}

    /** Produces a tensor's little-endian data; called once per tensor, in file order. */
    @FunctionalInterface
    public interface TensorBytes {
        byte[] bytes(TensorInfo tensor) throws IOException;
    }

    /**
     * Writes {@code tensors} (any order; the file uses {@link SafetensorsWriter#FILE_ORDER}) with
     * {@link SafetensorsWriter#DEFAULT_METADATA} plus {@code extraMetadata}.
     *
     * @throws IllegalStateException when {@code source} returns data of another size than the tensor's shape says:
     *                               the header already promised that size, so the file would be corrupt
     */
    public static void write(OutputStream out, Collection<TensorInfo> tensors, Map<String, String> extraMetadata,
                             TensorBytes source) throws IOException {
        List<TensorInfo> ordered = new ArrayList<>(tensors);
        ordered.sort(SafetensorsWriter.FILE_ORDER);
        Set<String> seen = new HashSet<>();
        for (TensorInfo t : ordered) {
            if (!seen.add(t.name())) {
                throw new IllegalArgumentException("tensor " + t.name() + " listed twice");
            }
        }
        Map<String, String> metadata = new TreeMap<>(SafetensorsWriter.DEFAULT_METADATA);
        metadata.putAll(extraMetadata);
        out.write(SafetensorsWriter.header(metadata, ordered));
        for (TensorInfo t : ordered) {
            byte[] data = source.bytes(t);
            if (data.length != t.byteSize()) {
                throw new IllegalStateException("tensor " + t + " needs " + t.byteSize() + " bytes but its source gave "
                        + data.length + ": the planned shape or dtype does not match what was computed");
            }
            out.write(data);
        }
    }
}
