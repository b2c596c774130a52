package org.qalora.datasets.read;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;

/**
 * A UTF-8 decoding Reader that replaces each malformed byte sequence with U+FFFD (so a JSON parser can go on)
 * and remembers the character offset where it did, so the caller can tell which record contained it. A genuine
 * U+FFFD in the text is not mistaken for one, because it is the offsets, not the characters, that are tracked.
 */
final class Utf8TrackingReader extends Reader {

    private final InputStream in;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
    private final ByteBuffer bytes = ByteBuffer.allocate(1 << 16).flip();
    private final ArrayDeque<Long> badOffsets = new ArrayDeque<>();
    private long charsDelivered;
    private boolean eof;

    Utf8TrackingReader(InputStream in) {
        this.in = in;
    }

    @Override
    public int read(char[] cbuf, int off, int len) throws IOException {
        if (len == 0) {
            return 0;
        }
        CharBuffer out = CharBuffer.wrap(cbuf, off, len);
        while (out.position() == off) {                 // until at least one char is produced
            CoderResult r = decoder.decode(bytes, out, eof);
            if (r.isError()) {
                badOffsets.add(charsDelivered + (out.position() - off));
                bytes.position(bytes.position() + r.length());
                out.put('\uFFFD');
            } else if (r.isOverflow()) {
                break;                                   // out is full (only possible with a tiny cbuf)
            } else if (eof) {
                if (bytes.hasRemaining()) {              // a sequence cut off by the end of the file
                    badOffsets.add(charsDelivered + (out.position() - off));
                    bytes.position(bytes.limit());
                    out.put('\uFFFD');
                } else {
                    decoder.flush(out);
                    if (out.position() == off) {
                        return -1;
                    }
                }
            } else {
                fill();
            }
        }
        int n = out.position() - off;
        if (charsDelivered == 0 && n > 0 && cbuf[off] == '\uFEFF') {
            // A UTF-8 byte order mark is not content: drop it, and shift the offsets recorded in this call by one
            // so they stay in the parser's coordinates.
            System.arraycopy(cbuf, off + 1, cbuf, off, n - 1);
            n--;
            ArrayDeque<Long> shifted = new ArrayDeque<>();
            badOffsets.forEach(o -> shifted.add(o - 1));
            badOffsets.clear();
            badOffsets.addAll(shifted);
            if (n == 0) {
                return read(cbuf, off, len);
            }
        }
        charsDelivered += n;
        return n;
    }

    private void fill() throws IOException {
        bytes.compact();
        int n = in.read(bytes.array(), bytes.position(), bytes.remaining());
        if (n < 0) {
            eof = true;
        } else {
            bytes.position(bytes.position() + n);
        }
        bytes.flip();
    }

    /** Whether a malformed sequence was replaced in [from, to) (char offsets); forgets offsets before {@code to}. */
    boolean malformedIn(long from, long to) {
        boolean found = false;
        while (!badOffsets.isEmpty() && badOffsets.peekFirst() < to) {
            if (badOffsets.pollFirst() >= from) {
                found = true;
            }
        }
        return found;
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
