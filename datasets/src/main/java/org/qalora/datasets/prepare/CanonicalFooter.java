package org.qalora.datasets.prepare;

import org.apache.parquet.format.ColumnChunk;
import org.apache.parquet.format.ColumnMetaData;
import org.apache.parquet.format.Encoding;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.RowGroup;
import org.apache.parquet.format.Util;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Comparator;

/**
 * Puts a Parquet footer's per-column encoding lists in one order, so the same rows give the same bytes in every
 * process.
 *
 * <p>Why: parquet-mr (1.17.0 here) gathers a column chunk's encodings in a {@code HashSet<Encoding>} and writes
 * the footer's {@code ColumnMetaData.encodings} list in that set's iteration order. An enum's hash code is its
 * identity hash, fixed inside a JVM but different in the next one, so two processes writing the same rows list
 * e.g. [RLE, PLAIN_DICTIONARY] in one and [PLAIN_DICTIONARY, RLE] in the other (apache/parquet-java#3215, open).
 * The list is a set to readers: its order means nothing, so sorting it by the encoding's Thrift value changes no
 * meaning, and no length (each element is one varint whose size does not depend on its position).
 */
final class CanonicalFooter {
    private static final byte[] MAGIC = "PAR1".getBytes(StandardCharsets.US_ASCII);
    private static final Comparator<Encoding> BY_VALUE = Comparator.comparingInt(Encoding::getValue);

    private CanonicalFooter() {}

    /**
     * The last bytes of a Parquet file ({@code tail}: anything, then the Thrift footer, its 4-byte little-endian
     * length and "PAR1"), with the footer's encoding lists sorted, in place. {@code location} names the file in
     * errors.
     */
    static void canonicalise(byte[] tail, int length, String location) throws IOException {
        if (length < 8 || !Arrays.equals(tail, length - 4, length, MAGIC, 0, 4)) {
            throw new IOException(location + ": parquet-mr did not end the file with PAR1; cannot canonicalise its footer");
        }
        int footerLength = ByteBuffer.wrap(tail, length - 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        int start = length - 8 - footerLength;
        if (footerLength <= 0 || start < 0) {
            throw new IOException(location + ": the footer is " + footerLength + " bytes but only " + (length - 8)
                    + " bytes were held back before it");
        }
        FileMetaData meta = Util.readFileMetaData(new ByteArrayInputStream(tail, start, footerLength));
        for (RowGroup g : meta.getRow_groups()) {
            for (ColumnChunk c : g.getColumns()) {
                ColumnMetaData m = c.getMeta_data();
                if (m != null && m.getEncodings() != null) {
                    m.getEncodings().sort(BY_VALUE);
                }
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(footerLength);
        Util.writeFileMetaData(meta, out);
        if (out.size() != footerLength) {   // the same fields re-serialized: a different size means we lost something
            throw new IOException(location + ": the canonical footer is " + out.size() + " bytes, parquet-mr's was "
                    + footerLength + "; refusing to write a footer that differs in more than its encodings' order");
        }
        System.arraycopy(out.toByteArray(), 0, tail, start, footerLength);
    }
}
