package org.qalora.quant.gguf;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Little-endian primitives of the GGUF format on a stream, counting the bytes written so that alignment padding
 * and tensor sizes can be checked against the header's promises.
 */
final class GgufOutput {
    private final OutputStream out;
    private final byte[] scratch = new byte[8];
    private long position;

    GgufOutput(OutputStream out) {
        this.out = out;
    }

    long position() { return position; }

    void u8(int v) throws IOException {
        out.write(v);
        position++;
    }

    void u16(int v) throws IOException {
        put(v, 2);
    }

    void u32(long v) throws IOException {
        put(v, 4);
    }

    void u64(long v) throws IOException {
        put(v, 8);
    }

    void f32(float v) throws IOException {
        put(Float.floatToRawIntBits(v) & 0xFFFFFFFFL, 4);
    }

    void f64(double v) throws IOException {
        put(Double.doubleToRawLongBits(v), 8);
    }

    /** A GGUF string: u64 byte length, then UTF-8 bytes, no terminator. */
    void string(String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        u64(b.length);
        bytes(b, 0, b.length);
    }

    void bytes(byte[] b, int off, int len) throws IOException {
        out.write(b, off, len);
        position += len;
    }

    /** Zero bytes up to the next multiple of {@code alignment}. */
    void padTo(int alignment) throws IOException {
        long pad = (alignment - position % alignment) % alignment;
        for (long i = 0; i < pad; i++) {
            u8(0);
        }
    }

    private void put(long v, int n) throws IOException {
        for (int i = 0; i < n; i++) {
            scratch[i] = (byte) (v >>> (8 * i));
        }
        bytes(scratch, 0, n);
    }
}
