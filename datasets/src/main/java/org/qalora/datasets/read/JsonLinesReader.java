package org.qalora.datasets.read;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * JSON Lines: one record per line, read as bytes so that a line that is not valid UTF-8 is reported on its own
 * (and can be skipped) instead of being silently replaced by U+FFFD. Blank lines are ignored. Record ids are
 * {@code file:line} with 1-based line numbers.
 */
public final class JsonLinesReader implements RecordReader {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String file;
    private final DigestInputStream in;
    private final RecordValidator validator;
    private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
    private final byte[] buf = new byte[1 << 16];
    private int bufPos;
    private int bufLen;
    private byte[] line = new byte[1 << 12];
    private long lineNo;
    private boolean eof;

    public JsonLinesReader(String file, InputStream raw, RecordValidator validator) {
        this(file, raw, validator, 1);
    }

    /** Reads from the middle of a file: {@code raw} starts at the beginning of line {@code firstLine}. */
    public JsonLinesReader(String file, InputStream raw, RecordValidator validator, long firstLine) {
        this.file = file;
        this.lineNo = firstLine - 1;
        try {
            this.in = new DigestInputStream(raw, MessageDigest.getInstance("SHA-256"));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        this.validator = validator;
    }

    @Override
    public ReadResult next() throws IOException {
        while (true) {
            int n = readLine();
            if (n < 0) {
                return null;
            }
            lineNo++;
            if (n > 0 && line[n - 1] == '\r') {
                n--;                                   // CRLF files
            }
            if (isBlank(line, n)) {
                continue;
            }
            String id = file + ":" + lineNo;
            String text;
            try {
                text = utf8.decode(ByteBuffer.wrap(line, 0, n)).toString();
            } catch (CharacterCodingException e) {
                return ReadResult.bad(id, BadRecordReason.INVALID_UTF8, "byte sequence that is not UTF-8 near byte "
                        + firstBadByte(n) + " of the line; re-encode the file as UTF-8");
            }
            if (lineNo == 1 && text.startsWith("\uFEFF")) {
                text = text.substring(1);              // a UTF-8 byte order mark
            }
            JsonNode node;
            try {
                node = JSON.readTree(text);
            } catch (JsonProcessingException e) {
                return ReadResult.bad(id, BadRecordReason.MALFORMED_JSON, e.getOriginalMessage());
            }
            return JsonRecords.validate(validator, id, node);
        }
    }

    /** Reads the next line (without its '\n') into {@link #line}; returns its length, or -1 at end of input. */
    private int readLine() throws IOException {
        if (eof && bufPos >= bufLen) {
            return -1;
        }
        int n = 0;
        while (true) {
            if (bufPos >= bufLen) {
                bufLen = in.read(buf, 0, buf.length);
                bufPos = 0;
                if (bufLen <= 0) {
                    bufLen = 0;
                    eof = true;
                    return n == 0 ? -1 : n;       // last line without a trailing newline
                }
            }
            int start = bufPos;
            while (bufPos < bufLen && buf[bufPos] != '\n') {
                bufPos++;
            }
            int chunk = bufPos - start;
            if (n + chunk > line.length) {
                line = Arrays.copyOf(line, Math.max(line.length * 2, n + chunk));
            }
            System.arraycopy(buf, start, line, n, chunk);
            n += chunk;
            if (bufPos < bufLen) {
                bufPos++;                            // consume '\n'
                return n;
            }
        }
    }

    private static boolean isBlank(byte[] b, int n) {
        for (int i = 0; i < n; i++) {
            if (b[i] != ' ' && b[i] != '\t') {
                return false;
            }
        }
        return true;
    }

    private int firstBadByte(int n) {
        CharsetDecoder d = StandardCharsets.UTF_8.newDecoder();
        ByteBuffer bb = ByteBuffer.wrap(line, 0, n);
        d.decode(bb, CharBuffer.allocate(n), true);
        return bb.position() + 1;
    }

    @Override
    public String fileSha256() throws IOException {
        byte[] rest = new byte[1 << 16];
        while (in.read(rest) > 0) {
            // drain: the hash covers the whole file even if the caller stopped early
        }
        return HexFormat.of().formatHex(in.getMessageDigest().digest());
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
