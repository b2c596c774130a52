package org.qalora.quant.gguf;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Writes a GGUF v3 file (the layout of ggml's gguf.cpp, little-endian):
 *
 * <pre>
 *   u32 magic "GGUF" | u32 version 3 | u64 tensor count | u64 key-value count
 *   key-values:   string key, u32 value type, value (arrays: u32 element type, u64 count, elements)
 *   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml type, u64 data offset
 *   zero padding to the alignment (32), then each tensor's bytes at its offset, each padded to the alignment
 * </pre>
 *
 * Offsets must be known before any data is written, so tensors are declared with their type and shape and their
 * bytes are produced one tensor at a time, in declaration order: a multi-gigabyte model never sits in memory. The
 * byte count each tensor's producer writes is checked against its type and shape.
 */
public final class GgufWriter {
    public static final int MAGIC = 0x46554747;          // "GGUF" read as a little-endian u32
    public static final int VERSION = 3;
    public static final int ALIGNMENT = 32;               // GGUF_DEFAULT_ALIGNMENT; we never set general.alignment

    /** Writes one tensor's bytes, exactly {@code info.byteSize()} of them. */
    @FunctionalInterface
    public interface TensorData {
        void write(OutputStream out) throws IOException;
    }

    /** A tensor to write: its header entry (offset not yet placed) and its bytes. */
    public record Tensor(String name, long[] dims, GgmlType type, TensorData data) {}

    private GgufWriter() {}

    /** Writes the whole file to {@code out} (not closed). Returns the tensor infos with their offsets. */
    public static List<GgufTensorInfo> write(OutputStream out, GgufMetadata metadata, List<Tensor> tensors)
            throws IOException {
        List<GgufTensorInfo> infos = new ArrayList<>(tensors.size());
        Set<String> names = new HashSet<>();
        long offset = 0;
        for (Tensor t : tensors) {
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("GGUF tensor " + t.name() + " is declared twice");
            }
            GgufTensorInfo info = new GgufTensorInfo(t.name(), t.dims(), t.type(), offset);
            infos.add(info);
            offset = align(offset + info.byteSize());
        }
        // Small writes (every key, every tensor info) would each reach the file system without this buffer.
        java.io.BufferedOutputStream buffered = new java.io.BufferedOutputStream(out, 1 << 20);
        GgufOutput o = new GgufOutput(buffered);
        o.u32(MAGIC);
        o.u32(VERSION);
        o.u64(tensors.size());
        o.u64(metadata.size());
        metadata.writeTo(o);
        for (GgufTensorInfo info : infos) {
            o.string(info.name());
            long[] dims = info.dims();
            o.u32(dims.length);
            for (long d : dims) {
                o.u64(d);
            }
            o.u32(info.type().id());
            o.u64(info.offset());
        }
        o.padTo(ALIGNMENT);
        long dataStart = o.position();
        for (int i = 0; i < tensors.size(); i++) {
            GgufTensorInfo info = infos.get(i);
            long before = o.position();
            tensors.get(i).data().write(new CountingStream(o));
            long written = o.position() - before;
            if (written != info.byteSize()) {
                throw new IllegalStateException("GGUF tensor " + info + " produced " + written + " bytes, its type and"
                        + " shape need " + info.byteSize());
            }
            o.padTo(ALIGNMENT);
            if (i + 1 < tensors.size() && o.position() - dataStart != infos.get(i + 1).offset()) {
                throw new IllegalStateException("GGUF data offset drifted at " + infos.get(i + 1).name());
            }
        }
        buffered.flush();
        return infos;
    }

    static long align(long n) {
        return (n + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    /** Routes a producer's bytes through the counting GGUF output. */
    private static final class CountingStream extends OutputStream {
        private final GgufOutput o;

        CountingStream(GgufOutput o) {
            this.o = o;
        }

        @Override
        public void write(int b) throws IOException {
            o.u8(b & 0xFF);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            o.bytes(b, off, len);
        }
    }
}
