package org.qalora.datasets.read;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * A file holding one JSON array of records ({@code alpaca_data.json}), parsed element by element with Jackson's
 * streaming parser: memory stays at one record whatever the file size. Record ids are {@code file[index]}
 * (0-based element index); messages add the line. Invalid UTF-8 is detected per element (see
 * {@link Utf8TrackingReader}). Broken JSON syntax ends the file: past that point elements cannot be delimited,
 * so it is an error even with --skip-bad-records.
 */
public final class JsonArrayReader implements RecordReader {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String file;
    private final DigestInputStream digest;
    private final Utf8TrackingReader chars;
    private final JsonParser parser;
    private final RecordValidator validator;
    private long index;
    private boolean started;
    private boolean done;

    public JsonArrayReader(String file, InputStream raw, RecordValidator validator) throws IOException {
        this.file = file;
        try {
            this.digest = new DigestInputStream(raw, MessageDigest.getInstance("SHA-256"));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        this.chars = new Utf8TrackingReader(digest);
        this.parser = new JsonFactory(JSON).disable(JsonParser.Feature.AUTO_CLOSE_SOURCE).createParser(chars);
        this.validator = validator;
    }

    @Override
    public ReadResult next() throws IOException {
        if (done) {
            return null;
        }
        try {
            if (!started) {
                started = true;
                JsonToken first = parser.nextToken();
                if (first != JsonToken.START_ARRAY) {
                    throw new MalformedFileException(file + ": expected a JSON array of records ('[' first), got "
                            + (first == null ? "an empty file" : first.asString())
                            + "; use a .jsonl file for one record per line");
                }
            }
            JsonToken t = parser.nextToken();
            if (t == JsonToken.END_ARRAY || t == null) {
                if (t == null) {
                    throw new MalformedFileException(file + ": the JSON array is not closed (missing ']')");
                }
                if (parser.nextToken() != null) {
                    throw new MalformedFileException(file + ": content after the closing ']' at line "
                            + parser.currentTokenLocation().getLineNr());
                }
                done = true;
                return null;
            }
            long line = parser.currentTokenLocation().getLineNr();
            long start = parser.currentTokenLocation().getCharOffset();
            JsonNode node = parser.readValueAsTree();
            long end = parser.currentLocation().getCharOffset();
            String id = file + "[" + index++ + "]";
            if (chars.malformedIn(start, end)) {
                return ReadResult.bad(id, BadRecordReason.INVALID_UTF8, "element starting at line " + line
                        + " holds bytes that are not UTF-8; re-encode the file as UTF-8");
            }
            return JsonRecords.validate(validator, id, node);
        } catch (JsonProcessingException e) {
            // Databind errors from readValueAsTree (e.g. the nesting-depth limit) carry no location: use the parser's.
            var at = e.getLocation() != null ? e.getLocation() : parser.currentLocation();
            throw new MalformedFileException(file + ": not valid JSON at line " + at.getLineNr()
                    + ", column " + at.getColumnNr() + " (element " + index + "): "
                    + e.getOriginalMessage() + "; records after this point cannot be delimited, fix the file");
        }
    }

    @Override
    public String fileSha256() throws IOException {
        byte[] rest = new byte[1 << 16];
        while (digest.read(rest) > 0) {
            // drain what the parser did not need
        }
        return HexFormat.of().formatHex(digest.getMessageDigest().digest());
    }

    @Override
    public void close() throws IOException {
        parser.close();
        chars.close();
    }
}
