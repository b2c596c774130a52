package org.qalora.quant.gguf;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.FSDataInputStream;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;

/**
 * A GGUF file's header read from any Hadoop path (version 3, little-endian; see {@link GgufWriter} for the layout),
 * with tensor data read on demand. Every offset and size is checked against the file length, so a truncated or
 * corrupt file fails with a message naming the file and tensor.
 */
public final class GgufFile {
    private final String location;
    private final HadoopPaths paths;
    private final int version;
    private final GgufMetadata metadata;
    private final Map<String, GgufTensorInfo> tensors;
    private final long dataStart;

    private GgufFile(String location, HadoopPaths paths, int version, GgufMetadata metadata,
                     Map<String, GgufTensorInfo> tensors, long dataStart) {
        this.location = location;
        this.paths = paths;
        this.version = version;
        this.metadata = metadata;
        this.tensors = tensors;
        this.dataStart = dataStart;
    }

    public static GgufFile open(String location, HadoopPaths paths) throws IOException {
        long length = paths.length(location);
        try (FSDataInputStream raw = paths.open(location);
             InputStream buffered = new BufferedInputStream(raw, 1 << 16)) {
            GgufInput in = new GgufInput(buffered, location, length);
            long magic = in.u32();
            if (magic != (GgufWriter.MAGIC & 0xFFFFFFFFL)) {
                throw new FormatException(location + ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
            }
            int version = (int) in.u32();
            if (version != GgufWriter.VERSION) {
                throw new FormatException(location + ": GGUF version " + version + ", this reader reads version 3");
            }
            // A tensor info is at least 8 (name length) + 4 + 8 + 4 + 8 bytes, a key-value at least 8 + 4 + 1.
            long tensorCount = in.count("tensor count", 32);
            long kvCount = in.count("key-value count", 13);
            GgufMetadata metadata = GgufMetadata.readFrom(in, kvCount);
            int alignment = GgufWriter.ALIGNMENT;
            if (metadata.contains("general.alignment")) {
                alignment = (int) metadata.integer("general.alignment");
                if (alignment <= 0 || (alignment & (alignment - 1)) != 0) {
                    throw new FormatException(location + ": general.alignment " + alignment + " is not a power of two");
                }
            }
            Map<String, GgufTensorInfo> tensors = new LinkedHashMap<>();
            for (long i = 0; i < tensorCount; i++) {
                String name = in.string("tensor name " + i);
                String where = location + ": tensor " + name;
                long nDims = in.u32();
                if (nDims < 1 || nDims > 4) {
                    throw new FormatException(where + " has " + nDims + " dimensions; ggml allows 1 to 4");
                }
                long[] dims = new long[(int) nDims];
                for (int d = 0; d < nDims; d++) {
                    dims[d] = in.u64();
                    if (dims[d] <= 0) {
                        throw new FormatException(where + " has dimension " + d + " = " + Long.toUnsignedString(dims[d]));
                    }
                }
                GgmlType type = GgmlType.byId((int) in.u32(), where);
                long offset = in.u64();
                if (offset % alignment != 0) {
                    throw new FormatException(where + " starts at data offset " + offset + ", not a multiple of the"
                            + " alignment " + alignment);
                }
                GgufTensorInfo info;
                try {
                    info = new GgufTensorInfo(name, dims, type, offset);
                    info.byteSize();
                } catch (IllegalArgumentException | ArithmeticException e) {
                    throw new FormatException(where + ": " + e.getMessage());
                }
                if (tensors.put(name, info) != null) {
                    throw new FormatException(where + " appears twice");
                }
            }
            long dataStart = (in.position() + alignment - 1) / alignment * alignment;
            for (GgufTensorInfo t : tensors.values()) {
                long end = dataStart + t.offset() + t.byteSize();
                if (t.offset() < 0 || end > length || end < 0) {
                    throw new FormatException(location + ": tensor " + t.name() + " needs bytes up to " + end
                            + " but the file has " + length + ": it is truncated");
                }
            }
            return new GgufFile(location, paths, version, metadata, Collections.unmodifiableMap(tensors), dataStart);
        }
    }

    public String location() { return location; }

    public int version() { return version; }

    public GgufMetadata metadata() { return metadata; }

    /** Tensor infos in file order. */
    public List<GgufTensorInfo> tensors() { return new ArrayList<>(tensors.values()); }

    public boolean contains(String name) { return tensors.containsKey(name); }

    public GgufTensorInfo tensor(String name) {
        GgufTensorInfo t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(location + ": no tensor " + name);
        }
        return t;
    }

    /** Absolute file offset of the data section (the header rounded up to the alignment). */
    public long dataStart() { return dataStart; }

    /** The raw bytes of one tensor (at most 2 GiB: one projection, not a whole model). */
    public byte[] bytes(String name) throws IOException {
        GgufTensorInfo t = tensor(name);
        long size = t.byteSize();
        if (size > Integer.MAX_VALUE - 16) {
            throw new IOException(location + ": tensor " + name + " has " + size + " bytes, too many to read at once");
        }
        byte[] b = new byte[(int) size];
        try (FSDataInputStream in = paths.open(location)) {
            in.readFully(dataStart + t.offset(), b);
        }
        return b;
    }

    /** One tensor decoded to floats, in ggml's order (innermost dimension fastest). */
    public float[] floats(String name) throws IOException {
        GgufTensorInfo t = tensor(name);
        if (t.elements() > Integer.MAX_VALUE - 16) {
            throw new IOException(location + ": tensor " + name + " has too many elements to decode at once");
        }
        byte[] b = bytes(name);
        return switch (t.type()) {
            case F32 -> {
                float[] f = new float[(int) t.elements()];
                java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
                yield f;
            }
            case F16 -> {
                float[] f = new float[(int) t.elements()];
                for (int i = 0; i < f.length; i++) {
                    f[i] = Float.float16ToFloat((short) ((b[2 * i] & 0xFF) | (b[2 * i + 1] << 8)));
                }
                yield f;
            }
            case Q4_1 -> Q41Blocks.decode(b, (int) (t.elements() / Q41Blocks.BLOCK));
        };
    }
}
