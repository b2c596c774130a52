package org.qalora.quant.safetensors;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.FSDataInputStream;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;

/**
 * One safetensors file, opened for reading.
 *
 * <p>Local files are memory-mapped whole through {@link FileChannel#map(FileChannel.MapMode, long, long, Arena)}:
 * all offsets are {@code long}, so files (and tensors) beyond 2 GiB work; reading a tensor touches only its pages.
 * Files on other Hadoop file systems (hdfs://, s3a://) are never copied whole: the header and then each requested
 * tensor's byte range are fetched with positional reads.
 *
 * <p>Thread-safe for reads. {@link #close()} unmaps the file; segments from {@link #segment} die with it.
 */
public final class SafetensorsFile implements AutoCloseable {
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Remote reads go in chunks of this size so a multi-GiB tensor never needs one giant heap array. */
    private static final int REMOTE_CHUNK = 16 << 20;

    private final String location;
    private final SafetensorsHeader header;
    private final Arena arena;
    private final MemorySegment mapped;          // whole file, when local; else null
    private final FSDataInputStream remote;      // when not local; else null

    private SafetensorsFile(String location, SafetensorsHeader header, Arena arena, MemorySegment mapped,
                            FSDataInputStream remote) {
        this.location = location;
        this.header = header;
        this.arena = arena;
        this.mapped = mapped;
        this.remote = remote;
    }

    /** Opens a file through the default Hadoop configuration. */
    public static SafetensorsFile open(String location) throws IOException {
        return open(location, HadoopPaths.defaults());
    }

    /** Opens a file; local files are mapped, others read with positional reads. */
    public static SafetensorsFile open(String location, HadoopPaths paths) throws IOException {
        HadoopPaths.Resolved resolved = paths.resolve(location);
        java.nio.file.Path local = resolved.localFile();
        if (local != null) {
            return openLocal(location, local);
        }
        long size = paths.length(location);
        FSDataInputStream in = paths.open(location);
        try {
            byte[] prefix = new byte[8];
            if (size >= 8) {
                in.readFully(0, prefix);
            }
            long n = SafetensorsHeader.headerLength(location, prefix, size);
            byte[] headerBytes = new byte[(int) n];
            in.readFully(8, headerBytes);
            SafetensorsHeader header = SafetensorsHeader.parse(location, headerBytes, size);
            return new SafetensorsFile(location, header, Arena.ofShared(), null, in);
        } catch (IOException | RuntimeException e) {
            in.close();
            throw e;
        }
    }

    private static SafetensorsFile openLocal(String location, java.nio.file.Path file) throws IOException {
        if (!java.nio.file.Files.isRegularFile(file)) {
            throw new java.io.FileNotFoundException(location + ": no such file");
        }
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            MemorySegment whole = size == 0 ? MemorySegment.NULL
                    : channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            byte[] prefix = size >= 8 ? whole.asSlice(0, 8).toArray(ValueLayout.JAVA_BYTE) : new byte[8];
            long n = SafetensorsHeader.headerLength(location, prefix, size);
            byte[] headerBytes = whole.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
            SafetensorsHeader header = SafetensorsHeader.parse(location, headerBytes, size);
            return new SafetensorsFile(location, header, arena, whole, null);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public String location() { return location; }

    /** Tensor names in file (offset) order. */
    public List<String> names() { return new ArrayList<>(header.entries.keySet()); }

    public boolean contains(String name) { return header.entries.containsKey(name); }

    /** The {@code __metadata__} string map (empty when absent). */
    public Map<String, String> metadata() { return header.metadata; }

    public TensorInfo info(String name) { return entry(name).info(); }

    private SafetensorsHeader.Entry entry(String name) {
        SafetensorsHeader.Entry e = header.entries.get(name);
        if (e == null) {
            throw new IllegalArgumentException(location + ": no tensor named " + name + " (the file has "
                    + header.entries.size() + " tensors)");
        }
        return e;
    }

    /** Whether the file is memory-mapped (local), so {@link #segment} is a view of the mapping and copies nothing. */
    public boolean isMapped() { return mapped != null; }

    /**
     * The raw little-endian bytes of a tensor as a read-only segment: a view of the mapping for local files (no
     * copy), an off-heap copy owned by this file otherwise. Valid until {@link #close()}.
     */
    public MemorySegment segment(String name) throws IOException {
        SafetensorsHeader.Entry e = entry(name);
        if (mapped != null) {
            return mapped.asSlice(e.begin(), e.length()).asReadOnly();
        }
        MemorySegment copy = arena.allocate(Math.max(1, e.length()), 8);
        readRemote(e, copy);
        return copy.asSlice(0, e.length()).asReadOnly();
    }

    /**
     * Hands tensor {@code name}'s raw little-endian bytes to {@code reader} and returns its result: a view of the
     * mapping for local files (no copy), a scratch copy that lives only during the call otherwise. For callers that
     * look at the bytes more than once (e.g. checksum, then decode) without keeping them.
     */
    public <T> T withBytes(String name, java.util.function.Function<MemorySegment, T> reader) throws IOException {
        return decode(entry(name), reader);
    }

    /** Reads a tensor's bytes and hands them to {@code decoder}; remote data lives only during the call. */
    private <T> T decode(SafetensorsHeader.Entry e, java.util.function.Function<MemorySegment, T> decoder) throws IOException {
        if (mapped != null) {
            return decoder.apply(mapped.asSlice(e.begin(), e.length()));
        }
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment buffer = scratch.allocate(Math.max(1, e.length()), 8);
            readRemote(e, buffer);
            return decoder.apply(buffer.asSlice(0, e.length()));
        }
    }

    private void readRemote(SafetensorsHeader.Entry e, MemorySegment into) throws IOException {
        byte[] chunk = new byte[(int) Math.min(REMOTE_CHUNK, Math.max(1, e.length()))];
        for (long done = 0; done < e.length(); ) {
            int n = (int) Math.min(chunk.length, e.length() - done);
            try {
                remote.readFully(e.begin() + done, chunk, 0, n);
            } catch (java.io.EOFException eof) {
                throw new FormatException(location + ": tensor " + e.info().name() + " ends past the end of the file: truncated", eof);
            }
            MemorySegment.copy(chunk, 0, into, ValueLayout.JAVA_BYTE, done, n);
            done += n;
        }
    }

    private int elementCount(TensorInfo info) {
        long n = info.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(location + ": tensor " + info.name() + " has " + n
                    + " elements, more than one Java array holds; read it through segment()");
        }
        return (int) n;
    }

    /** A floating-point tensor widened exactly to float (F32 as is; F16 and BF16 are exact subsets of float). */
    public float[] floats(String name) throws IOException {
        SafetensorsHeader.Entry e = entry(name);
        TensorInfo info = e.info();
        int n = elementCount(info);
        return switch (info.dtype()) {
            case F32 -> decode(e, s -> s.toArray(F32_LE));
            case F16 -> decode(e, s -> {
                float[] out = new float[n];
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(s.getAtIndex(I16_LE, i));
                }
                return out;
            });
            case BF16 -> decode(e, s -> {
                float[] out = new float[n];
                for (int i = 0; i < n; i++) {
                    // bf16 is the top half of an IEEE float: shifting it back up is exact.
                    out[i] = Float.intBitsToFloat((s.getAtIndex(I16_LE, i) & 0xFFFF) << 16);
                }
                return out;
            });
            default -> throw new FormatException(location + ": tensor " + name + " is " + info.dtype()
                    + ", expected a floating-point dtype (F32, F16 or BF16)");
        };
    }

    /** An int tensor: I32 as is; I8, U8 widened (U8 unsigned). */
    public int[] ints(String name) throws IOException {
        SafetensorsHeader.Entry e = entry(name);
        TensorInfo info = e.info();
        int n = elementCount(info);
        return switch (info.dtype()) {
            case I32 -> decode(e, s -> s.toArray(I32_LE));
            case I8 -> decode(e, s -> {
                int[] out = new int[n];
                for (int i = 0; i < n; i++) {
                    out[i] = s.get(ValueLayout.JAVA_BYTE, i);
                }
                return out;
            });
            case U8 -> decode(e, s -> {
                int[] out = new int[n];
                for (int i = 0; i < n; i++) {
                    out[i] = s.get(ValueLayout.JAVA_BYTE, i) & 0xFF;
                }
                return out;
            });
            default -> throw new FormatException(location + ": tensor " + name + " is " + info.dtype()
                    + ", expected an integer dtype of at most 32 bits (I32, I8 or U8)");
        };
    }

    /** A long tensor: I64 as is; I32, I8, U8 widened. */
    public long[] longs(String name) throws IOException {
        SafetensorsHeader.Entry e = entry(name);
        TensorInfo info = e.info();
        if (info.dtype() == DType.I64) {
            elementCount(info);
            return decode(e, s -> s.toArray(I64_LE));
        }
        if (info.dtype().isFloatingPoint()) {
            throw new FormatException(location + ": tensor " + name + " is " + info.dtype() + ", expected an integer dtype");
        }
        int[] narrow = ints(name);
        long[] out = new long[narrow.length];
        for (int i = 0; i < narrow.length; i++) {
            out[i] = narrow[i];
        }
        return out;
    }

    /**
     * Writes a tensor's raw bytes to {@code out} in chunks of at most {@code REMOTE_CHUNK} bytes, so that copying a
     * tensor (a 7B model's 262 MB embedding, say) into another file never holds it whole on the heap.
     */
    public void copyTo(String name, java.io.OutputStream out) throws IOException {
        SafetensorsHeader.Entry e = entry(name);
        byte[] chunk = new byte[(int) Math.min(REMOTE_CHUNK, Math.max(1, e.length()))];
        for (long done = 0; done < e.length(); ) {
            int n = (int) Math.min(chunk.length, e.length() - done);
            if (mapped != null) {
                MemorySegment.copy(mapped, ValueLayout.JAVA_BYTE, e.begin() + done, chunk, 0, n);
            } else {
                try {
                    remote.readFully(e.begin() + done, chunk, 0, n);
                } catch (java.io.EOFException eof) {
                    throw new FormatException(location + ": tensor " + name + " ends past the end of the file: truncated",
                            eof);
                }
            }
            out.write(chunk, 0, n);
            done += n;
        }
    }

    /** The raw little-endian bytes of a tensor, whatever its dtype. */
    public byte[] bytes(String name) throws IOException {
        SafetensorsHeader.Entry e = entry(name);
        if (e.length() > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(location + ": tensor " + name + " is over 2 GiB; read it through segment()");
        }
        return decode(e, s -> s.toArray(ValueLayout.JAVA_BYTE));
    }

    @Override
    public void close() throws IOException {
        try {
            if (remote != null) {
                remote.close();
            }
        } finally {
            arena.close();
        }
    }
}
