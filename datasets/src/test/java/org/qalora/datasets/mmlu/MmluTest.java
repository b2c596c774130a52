package org.qalora.datasets.mmlu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.datasets.TestFiles;

/** The MMLU layout, the CSV dialect and Hendrycks' prompt, character for character. */
class MmluTest {
    @TempDir
    Path tmp;

    private static Path sample() {
        return TestFiles.root().resolve("samples/mmlu-sample");
    }

    @Test
    void csvKeepsQuotedCommasNewlinesAndDoubledQuotes() {
        List<CsvRows.Row> rows = CsvRows.parse("a,\"b, c\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",x,0.50\n\n", "f.csv");
        assertEquals(2, rows.size());
        assertEquals(List.of("a", "b, c", "say \"hi\""), rows.get(0).fields());
        assertEquals(List.of("two\nlines", "x", "0.50"), rows.get(1).fields());
        assertEquals(2, rows.get(1).line());
        IllegalArgumentException open = assertThrows(IllegalArgumentException.class,
                () -> CsvRows.parse("a,\"never closed\n", "f.csv"));
        assertEquals("f.csv:1: a quoted field is never closed", open.getMessage());
        IllegalArgumentException stray = assertThrows(IllegalArgumentException.class,
                () -> CsvRows.parse("ok\nab\"c\n", "f.csv"));
        assertTrue(stray.getMessage().startsWith("f.csv:2: a quote inside an unquoted field"), stray.getMessage());
    }

    @Test
    void thePromptIsHendrycksFormat() {
        MmluQuestion shot = new MmluQuestion("high_school_physics", "x", "Q1?", List.of("a", "b", "c", "d"), 'C');
        MmluQuestion q = new MmluQuestion("high_school_physics", "y", "Q2?", List.of("e", "f", "g", "h"), 'A');
        assertEquals("The following are multiple choice questions (with answers) about  high school physics.\n\n"
                + "Q1?\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\n"
                + "Q2?\nA. e\nB. f\nC. g\nD. h\nAnswer:", MmluPrompt.prompt(List.of(shot), 1, q));
        assertEquals("The following are multiple choice questions (with answers) about  astronomy.\n\n"
                + "Q2?\nA. e\nB. f\nC. g\nD. h\nAnswer:", MmluPrompt.prompt(List.of(), 0,
                new MmluQuestion("astronomy", "y", "Q2?", List.of("e", "f", "g", "h"), 'A')));
    }

    @Test
    void theSampleReadsWithSubjectsSortedAndShotsInFileOrder() throws Exception {
        MmluData d = MmluData.read(sample().toString(), 5, new Configuration());
        assertEquals(List.of("astronomy", "computer_security"), List.copyOf(d.test().keySet()));
        assertEquals(8, d.questions());
        assertEquals(5, d.dev().get("astronomy").size());
        assertEquals("Which planet is closest to the Sun?", d.dev().get("astronomy").get(0).question());
        MmluQuestion red = d.test().get("astronomy").get(3);
        assertEquals("The \"red planet\" is:", red.question());
        assertEquals('D', red.answer());
        assertTrue(red.where().endsWith("astronomy_test.csv:4"), red.where());
        assertEquals(0, MmluData.read(sample().toString(), 0, new Configuration()).dev().get("astronomy").size());
    }

    @Test
    void badFilesAreNamedWithLineAndField() throws Exception {
        Files.createDirectories(tmp.resolve("test"));
        Files.writeString(tmp.resolve("test/x_test.csv"), "q,a,b,c,d,A\nq,a,b,c,d,E\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MmluData.read(tmp.toString(), 0, new Configuration()));
        assertTrue(e.getMessage().endsWith("x_test.csv:2: field answer is \"E\", expected one of A, B, C, D"),
                e.getMessage());
        Files.writeString(tmp.resolve("test/x_test.csv"), "q,a,b,c,A\n");
        e = assertThrows(IllegalArgumentException.class, () -> MmluData.read(tmp.toString(), 0, new Configuration()));
        assertTrue(e.getMessage().endsWith("x_test.csv:1: 5 fields, expected 6 (question, A, B, C, D, answer; no header row)"),
                e.getMessage());
        Files.writeString(tmp.resolve("test/x_test.csv"), "q,a,b,c,d,A\n");
        e = assertThrows(IllegalArgumentException.class, () -> MmluData.read(tmp.toString(), 5, new Configuration()));
        assertTrue(e.getMessage().contains("x_dev.csv does not exist: --shots 5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MmluData.read(tmp.resolve("nope").toString(), 0, new Configuration()));
        assertTrue(e.getMessage().contains("no test/ directory"), e.getMessage());
    }
}
