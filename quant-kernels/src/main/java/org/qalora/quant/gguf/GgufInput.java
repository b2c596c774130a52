package org.qalora.quant.gguf;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.qalora.quant.io.FormatException;

/**
 * Little-endian primitives of the GGUF header read from a stream, with the file name and byte offset in every
 * error, and limits on lengths so a corrupt count fails with a message instead of an OutOfMemoryError.
 */
final class GgufInput {
    /** No key, token or tensor name we write comes near this; a larger length means a corrupt header. */
    static final long MAX_STRING_BYTES = 1 << 20;

    private final InputStream in;
    private final String where;
    private final long fileLength;
    private final byte[] scratch = new byte[8];
    private long position;

    GgufInput(InputStream in, String where, long fileLength) {
        this.in = in;
        this.where = where;
        this.fileLength = fileLength;
    }

    long position() { return position; }

    String where() { return where; }

    long fileLength() { return fileLength; }

    int u8() throws IOException {
        fill(1);
        return scratch[0] & 0xFF;
    }

    int u16() throws IOException {
        return (int) get(2);
    }

    long u32() throws IOException {
        return get(4);
    }

    long u64() throws IOException {
        return get(8);
    }

    float f32() throws IOException {
        return Float.intBitsToFloat((int) get(4));
    }

    double f64() throws IOException {
        return Double.longBitsToDouble(get(8));
    }

    String string(String what) throws IOException {
        long at = position;
        long n = u64();
        if (n < 0 || n > MAX_STRING_BYTES || n > fileLength - position) {
            throw new FormatException(where + ": " + what + " at byte " + at + " claims " + Long.toUnsignedString(n)
                    + " bytes, more than the file holds: the header is corrupt or truncated");
        }
        byte[] b = new byte[(int) n];
        readFully(b);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(b)).toString();
        } catch (CharacterCodingException e) {
            throw new FormatException(where + ": " + what + " at byte " + at + " is not valid UTF-8");
        }
    }

    /** A count that must fit the rest of the file at {@code minBytesEach} bytes per item. */
    long count(String what, long minBytesEach) throws IOException {
        long at = position;
        long n = u64();
        if (n < 0 || (minBytesEach > 0 && n > (fileLength - position) / minBytesEach)) {
            throw new FormatException(where + ": " + what + " at byte " + at + " is " + Long.toUnsignedString(n)
                    + ", more than the file could hold: the header is corrupt or truncated");
        }
        return n;
    }

    private long get(int n) throws IOException {
        fill(n);
        long v = 0;
        for (int i = 0; i < n; i++) {
            v |= (scratch[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    private void fill(int n) throws IOException {
        readFully(scratch, n);
    }

    private void readFully(byte[] b) throws IOException {
        readFully(b, b.length);
    }

    private void readFully(byte[] b, int n) throws IOException {
        int done = 0;
        while (done < n) {
            int r = in.read(b, done, n - done);
            if (r < 0) {
                throw new FormatException(where + ": the file ends at byte " + (position + done)
                        + " inside the GGUF header: it is truncated", new EOFException());
            }
            done += r;
        }
        position += n;
    }
}
