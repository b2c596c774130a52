package org.qalora.driver.state;

import java.io.IOException;
import java.io.OutputStream;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsStreamWriter;
import org.qalora.quant.safetensors.TensorInfo;

/**
 * A committed state as stored, one file or parts in key order (a round averaged on the executors writes one part
 * per key range), opened for streaming: its layout and step come from the headers, and tensors are copied out in
 * bounded chunks, so whatever it writes (the one-file state of a published version, a PEFT adapter) costs the driver
 * a chunk of heap, never the state's size. The one file it writes is byte for byte the file
 * {@link AdapterStateFile#write} writes for the same state read whole: same tensors, same header, same metadata.
 */
public final class StateParts implements AutoCloseable {
    private final List<Path> files;
    private final List<AdapterStateFile.Reader> readers = new ArrayList<>();
    private final Map<String, AdapterStateFile.Reader> readerOfKey = new HashMap<>();
    private final LinkedHashMap<String, long[]> layout = new LinkedHashMap<>();
    private final long step;

    private StateParts(Storage storage, List<Path> files) {
        this.files = List.copyOf(files);
        long common = -1;
        try {
            for (Path file : files) {
                AdapterStateFile.Reader r = AdapterStateFile.open(storage, file);
                readers.add(r);
                if (common >= 0 && r.step() != common) {
                    throw new IllegalStateException(file + " is at optimizer step " + r.step() + " but " + files.get(0)
                            + " is at " + common + ": the parts are not of one state");
                }
                common = r.step();
                for (String k : r.keys()) {
                    if (readerOfKey.put(k, r) != null) {
                        throw new IllegalStateException(file + " repeats key '" + k + "' of an earlier part");
                    }
                    layout.put(k, r.shape(k));
                }
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        if (files.isEmpty()) {
            throw new IllegalArgumentException("a state needs at least one file");
        }
        this.step = common;
    }

    /** Opens the state stored as {@code files} (one file, or parts in key order); reads their headers only. */
    public static StateParts open(Storage storage, List<Path> files) {
        return new StateParts(storage, files);
    }

    /** The keys in the trainer's order (the parts' order, then each part's) with their shapes. */
    public Map<String, long[]> layout() {
        Map<String, long[]> copy = new LinkedHashMap<>();
        layout.forEach((k, v) -> copy.put(k, v.clone()));
        return copy;
    }

    public long step() { return step; }

    /**
     * Copies the raw F32 little-endian bytes of key {@code key}'s tensor {@code part} (0 weights, 1 Adam m, 2 Adam v)
     * to {@code out}, in bounded chunks.
     */
    public void copyTo(String key, int part, OutputStream out) throws IOException {
        AdapterStateFile.Reader r = readerOfKey.get(key);
        if (r == null) {
            throw new IllegalArgumentException("no adapter tensor '" + key + "' in " + files);
        }
        r.copyTo(AdapterStateFile.Reader.tensorName(key, part), out);
    }

    /**
     * Writes the state as one file to {@code target} (temporary name {@code tempName} in its directory, then
     * renamed; an existing {@code target} is kept, as {@link AdapterStateFile#write} does), with {@code extraMetadata};
     * returns its SHA-256, computed as the bytes stream out.
     */
    public String writeOneFile(Storage storage, Path target, String tempName, Map<String, String> extraMetadata) {
        return AdapterStateFile.write(storage, target, tempName, out -> writeOneFile(out, extraMetadata));
    }

    /** The SHA-256 of the file {@link #writeOneFile} would write, from one streaming read of the parts. */
    public String sha256OfOneFile(Map<String, String> extraMetadata) {
        MessageDigest md = Storage.sha256();
        try (OutputStream out = new DigestOutputStream(OutputStream.nullOutputStream(), md)) {
            writeOneFile(out, extraMetadata);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot read the state " + files + ": " + e.getMessage(), e);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** The one-file bytes: the header from the parts' headers, then every tensor copied in the file's order. */
    private void writeOneFile(OutputStream out, Map<String, String> extraMetadata) throws IOException {
        List<TensorInfo> tensors = new ArrayList<>();
        Map<String, String[]> keyAndPart = new HashMap<>();
        for (Map.Entry<String, long[]> e : layout.entrySet()) {
            for (int part = 0; part < 3; part++) {
                String name = AdapterStateFile.Reader.tensorName(e.getKey(), part);
                tensors.add(new TensorInfo(name, DType.F32, e.getValue()));
                keyAndPart.put(name, new String[] {e.getKey(), Integer.toString(part)});
            }
        }
        Map<String, String> metadata = AdapterStateFile.metadata(new ArrayList<>(layout.keySet()), step, extraMetadata);
        SafetensorsStreamWriter.write(out, tensors, metadata, (t, o) -> {
            String[] kp = keyAndPart.get(t.name());
            copyTo(kp[0], Integer.parseInt(kp[1]), o);
        });
    }

    @Override
    public void close() {
        for (AdapterStateFile.Reader r : readers) {
            r.close();
        }
        readers.clear();
    }
}
