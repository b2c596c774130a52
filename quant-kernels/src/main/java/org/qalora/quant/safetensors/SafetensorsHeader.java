package org.qalora.quant.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.quant.io.FormatException;

/**
 * The parsed and validated header of one safetensors file.
 *
 * <p>Layout: 8-byte little-endian header length {@code N}, {@code N} bytes of UTF-8 JSON, then the data area.
 * Validation follows the reference library: the JSON is an object; {@code __metadata__} (optional) maps strings to
 * strings; every other entry has {@code dtype}, {@code shape} and {@code data_offsets} (relative to the data area);
 * sorted by offset, the tensors tile the data area exactly (no gap, no overlap, starting at 0, ending at the file's
 * end); each tensor's byte length equals its element count times its dtype size.
 */
final class SafetensorsHeader {
    /** Same limit as the reference library: a larger "header" is a corrupt length field, not a real header. */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    /** One tensor entry: its info and absolute byte range [begin, end) inside the file. */
    record Entry(TensorInfo info, long begin, long end) {
        long length() { return end - begin; }
    }

    final String file;
    final long headerLength;
    final Map<String, Entry> entries;     // in file order
    final Map<String, String> metadata;

    private SafetensorsHeader(String file, long headerLength, Map<String, Entry> entries, Map<String, String> metadata) {
        this.file = file;
        this.headerLength = headerLength;
        this.entries = entries;
        this.metadata = metadata;
    }

    /** Reads the 8-byte prefix; checks the length is sane for a file of {@code fileSize} bytes. */
    static long headerLength(String file, byte[] prefix, long fileSize) throws FormatException {
        if (fileSize < 8) {
            throw new FormatException(file + ": " + fileSize + " bytes is too short for a safetensors file "
                    + "(needs at least the 8-byte header length): the file is truncated or not safetensors");
        }
        long n = ByteBuffer.wrap(prefix).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0);
        if (n < 2 || n > MAX_HEADER_BYTES) {
            throw new FormatException(file + ": header length field is " + Long.toUnsignedString(n)
                    + " bytes, not a plausible safetensors header (2.." + MAX_HEADER_BYTES + "): not a safetensors file or corrupt");
        }
        if (n > fileSize - 8) {
            throw new FormatException(file + ": header length " + n + " runs past the end of the " + fileSize
                    + "-byte file: the file is truncated");
        }
        return n;
    }

    /** Parses and validates the JSON header; {@code fileSize} is the total file length. */
    static SafetensorsHeader parse(String file, byte[] headerBytes, long fileSize) throws FormatException {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(headerBytes)).toString();
        } catch (CharacterCodingException e) {
            throw new FormatException(file + ": header is not valid UTF-8: the file is corrupt", e);
        }
        if (!text.startsWith("{")) {
            throw new FormatException(file + ": header does not start with '{' (a JSON object): not a safetensors file or corrupt");
        }
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new FormatException(file + ": header is not valid JSON (" + e.getOriginalMessage() + "): the file is corrupt", e);
        }
        if (root == null || !root.isObject()) {
            throw new FormatException(file + ": header is not a JSON object: the file is corrupt");
        }
        long headerLength = headerBytes.length;
        long dataStart = 8 + headerLength;
        long dataSize = fileSize - dataStart;

        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> list = new ArrayList<>();
        var fields = root.properties();
        for (Map.Entry<String, JsonNode> field : fields) {
            String name = field.getKey();
            JsonNode node = field.getValue();
            if (name.equals("__metadata__")) {
                readMetadata(file, node, metadata);
                continue;
            }
            list.add(readEntry(file, name, node, dataStart, dataSize));
        }

        // Tile check: sorted by start offset, each tensor begins where the previous ended.
        List<Entry> byOffset = new ArrayList<>(list);
        byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = dataStart;
        for (Entry e : byOffset) {
            if (e.begin() < expected) {
                throw new FormatException(file + ": tensor " + e.info().name() + " data_offsets ["
                        + (e.begin() - dataStart) + ", " + (e.end() - dataStart) + "] overlap the previous tensor (which ends at "
                        + (expected - dataStart) + "): the header is corrupt");
            }
            if (e.begin() > expected) {
                throw new FormatException(file + ": tensor " + e.info().name() + " data_offsets start at "
                        + (e.begin() - dataStart) + " but the previous tensor ends at " + (expected - dataStart)
                        + ": the data area has a gap, the header is corrupt");
            }
            expected = e.end();
        }
        if (expected - dataStart > dataSize) {
            throw new FormatException(file + ": header says the data area is " + (expected - dataStart)
                    + " bytes but the file only has " + dataSize + " after the header: the file is truncated");
        }
        if (expected - dataStart < dataSize) {
            throw new FormatException(file + ": " + (dataSize - (expected - dataStart))
                    + " bytes after the last tensor are not described by the header: the file is corrupt");
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (Entry e : byOffset) {
            entries.put(e.info().name(), e);
        }
        return new SafetensorsHeader(file, headerLength, Collections.unmodifiableMap(entries),
                Collections.unmodifiableMap(metadata));
    }

    private static void readMetadata(String file, JsonNode node, Map<String, String> metadata) throws FormatException {
        if (node.isNull()) {
            return;
        }
        if (!node.isObject()) {
            throw new FormatException(file + ": __metadata__ must be a JSON object of strings");
        }
        for (Map.Entry<String, JsonNode> m : node.properties()) {
            if (!m.getValue().isTextual()) {
                throw new FormatException(file + ": __metadata__ field \"" + m.getKey() + "\" is not a string");
            }
            metadata.put(m.getKey(), m.getValue().asText());
        }
    }

    private static Entry readEntry(String file, String name, JsonNode node, long dataStart, long dataSize)
            throws FormatException {
        String where = file + ": tensor " + name;
        if (!node.isObject()) {
            throw new FormatException(where + ": entry is not a JSON object with dtype, shape and data_offsets");
        }
        JsonNode dtypeNode = node.get("dtype");
        JsonNode shapeNode = node.get("shape");
        JsonNode offsetsNode = node.get("data_offsets");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new FormatException(where + ": missing or non-string \"dtype\"");
        }
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new FormatException(where + ": missing or non-array \"shape\"");
        }
        if (offsetsNode == null || !offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw new FormatException(where + ": \"data_offsets\" must be an array [begin, end]");
        }
        DType dtype;
        try {
            dtype = DType.parse(dtypeNode.asText());
        } catch (IllegalArgumentException e) {
            throw new FormatException(where + ": " + e.getMessage());
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0) {
                throw new FormatException(where + ": shape " + shapeNode + " has a non-integer or negative dimension");
            }
            shape[i] = d.asLong();
        }
        long[] off = new long[2];
        for (int i = 0; i < 2; i++) {
            JsonNode d = offsetsNode.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw new FormatException(where + ": data_offsets " + offsetsNode + " must be two non-negative integers");
            }
            off[i] = d.asLong();
        }
        if (off[1] < off[0]) {
            throw new FormatException(where + ": data_offsets " + offsetsNode + " end before they begin");
        }
        // Checked here, per entry, so that dataStart + offset below cannot overflow (offsets near Long.MAX_VALUE).
        if (off[1] > dataSize) {
            throw new FormatException(where + ": data_offsets " + offsetsNode + " run past the end of the "
                    + dataSize + "-byte data area: the header is corrupt or the file is truncated");
        }
        TensorInfo info = new TensorInfo(name, dtype, shape);
        long expectedBytes;
        try {
            expectedBytes = info.byteSize();
        } catch (ArithmeticException e) {
            throw new FormatException(where + ": shape " + shapeNode + " overflows");
        }
        if (expectedBytes != off[1] - off[0]) {
            throw new FormatException(where + ": shape " + info.shapeString() + " x " + dtype + " (" + dtype.size()
                    + " bytes) needs " + expectedBytes + " bytes but data_offsets " + offsetsNode + " span "
                    + (off[1] - off[0]) + ": the header is corrupt");
        }
        return new Entry(info, dataStart + off[0], dataStart + off[1]);
    }
}
