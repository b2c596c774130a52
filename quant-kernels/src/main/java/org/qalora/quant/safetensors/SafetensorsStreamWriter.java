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

    /** Writes a tensor's little-endian data to {@code out}; called once per tensor, in file order. */
    @FunctionalInterface
    public interface TensorData {
        void writeTo(TensorInfo tensor, OutputStream out) throws IOException;
    }

    /** Counts what a {@link TensorData} writes, so a wrong size is caught at that tensor. */
    private static final class Counting extends java.io.FilterOutputStream {
        long count;

        Counting(OutputStream out) {
            super(out);
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }
    }

    /**
     * Writes {@code tensors} (any order; the file uses {@link SafetensorsWriter#FILE_ORDER}) with
     * {@link SafetensorsWriter#DEFAULT_METADATA} plus {@code extraMetadata}.
     *
     * @throws IllegalStateException when {@code source} returns data of another size than the tensor's shape says:
     *                               the header already promised that size, so the file would be corrupt
     */
    public static void write(OutputStream out, Collection<TensorInfo> tensors, Map<String, String> extraMetadata,
                             TensorData source) throws IOException {
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
        Counting counting = new Counting(out);
        for (TensorInfo t : ordered) {
            counting.count = 0;
            source.writeTo(t, counting);
            if (counting.count != t.byteSize()) {
                throw new IllegalStateException("tensor " + t + " needs " + t.byteSize() + " bytes but its source gave "
                        + counting.count + ": the planned shape or dtype does not match what was computed");
            }
        }
    }
}
