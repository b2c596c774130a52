package org.qalora.datasets.read;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Streaming readers on files larger than their buffers, with byte order marks, CRLF and mixed bad records. */
class ReadersTest {

    @TempDir
    Path dir;

    private static List<ReadResult> readAll(Path f, RecordFormat format) throws Exception {
        List<ReadResult> out = new ArrayList<>();
        try (RecordReader r = RecordReaders.open(f.toString(), new Configuration(), format, RecordValidator.Limits.DEFAULT)) {
            ReadResult x;
            while ((x = r.next()) != null) {
                out.add(x);
            }
            assertEquals(sha256(Files.readAllBytes(f)), r.fileSha256(), "hash covers the whole file");
        }
        return out;
    }

    private static String sha256(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    /** ~3000 elements (several 64 KiB buffers); invalid UTF-8 in element 1500 only, a BOM in front. */
    @Test
    void bigJsonArrayFlagsOnlyTheElementWithInvalidUtf8() throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF});
        b.write("[\n".getBytes(StandardCharsets.UTF_8));
        int n = 3000;
        for (int i = 0; i < n; i++) {
            String head = "  {\"instruction\": \"Describe item " + i + " ünïcode ✓\", \"input\": \"\", \"output\": \"item";
            b.write(head.getBytes(StandardCharsets.UTF_8));
            if (i == 1500) {
                b.write(new byte[] {(byte) 0xE2, (byte) 0x28, (byte) 0xA1});   // broken 3-byte sequence
            }
            b.write((" " + i + " \uFFFD kept\"}" + (i < n - 1 ? ",\n" : "\n")).getBytes(StandardCharsets.UTF_8));
        }
        b.write("]\n".getBytes(StandardCharsets.UTF_8));
        Path f = Files.write(dir.resolve("big.json"), b.toByteArray());
        List<ReadResult> rs = readAll(f, RecordFormat.AUTO);
        assertEquals(n, rs.size());
        for (int i = 0; i < n; i++) {
            if (i == 1500) {
                assertEquals(BadRecordReason.INVALID_UTF8, rs.get(i).bad().reason());
                assertTrue(rs.get(i).bad().recordId().endsWith("big.json[1500]"));
            } else {
                int k = i;
                assertNull(rs.get(i).bad(), () -> "element " + k + " wrongly rejected");
                assertEquals("item " + i + " \uFFFD kept", rs.get(i).record().output(), "a genuine U+FFFD is data");
            }
        }
    }

    @Test
    void jsonlWithBomCrlfBlankLinesAndNoFinalNewline() throws Exception {
        String text = "\uFEFF{\"inputs\": \"a\", \"targets\": \"b\"}\r\n\r\n{\"input\": \"c\", \"output\": \"d\"}";
        Path f = Files.writeString(dir.resolve("x.jsonl"), text, StandardCharsets.UTF_8);
        List<ReadResult> rs = readAll(f, RecordFormat.AUTO);
        assertEquals(2, rs.size());
        assertEquals("b", rs.get(0).record().output());
        assertTrue(rs.get(1).record().recordId().endsWith("x.jsonl:3"), rs.get(1).record().recordId());
        assertEquals("c", rs.get(1).record().input());
        assertNull(rs.get(1).record().instruction());
    }

    @Test
    void alpacaWithoutInputFieldUsesEmptyInput() throws Exception {
        Path f = Files.writeString(dir.resolve("a.jsonl"), "{\"instruction\": \"Hi\", \"output\": \"Hello\"}\n");
        ReadResult r = readAll(f, RecordFormat.ALPACA).get(0);
        assertEquals("", r.record().input());
    }

    @Test
    void autoWithoutKnownFieldsNamesTheFieldsItLooksFor() throws Exception {
        Path f = Files.writeString(dir.resolve("q.jsonl"), "{\"question\": \"Hi\", \"answer\": \"Hello\"}\n");
        ReadResult r = readAll(f, RecordFormat.AUTO).get(0);
        assertEquals(BadRecordReason.MISSING_FIELD, r.bad().reason());
        assertTrue(r.bad().detail().contains("no \"instruction\" (Alpaca) nor \"inputs\"/\"targets\" (FLAN)"),
                r.bad().detail());
        // train and eval read records too and have no --format: the message must not suggest it
        assertFalse(r.bad().detail().contains("--format"), r.bad().detail());
    }
}
