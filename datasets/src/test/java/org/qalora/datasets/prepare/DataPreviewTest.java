package org.qalora.datasets.prepare;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The cheap look at raw data that train takes before any work. */
class DataPreviewTest {
    private static final String GOOD = "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"Hi.\"}\n";

    @TempDir
    Path dir;

    @Test
    void aTypoIsNamedWithTheFileItProbablyMeant() throws Exception {
        Files.writeString(dir.resolve("alpaca-sample.json"), "[]");
        Files.writeString(dir.resolve("unrelated.txt"), "x");
        List<String> p = DataPreview.problems("--data", List.of(dir.resolve("alpaca-sampel.json").toString()),
                new Configuration(), 20, false);
        assertEquals(List.of("--data " + dir.resolve("alpaca-sampel.json") + " does not exist (or is not readable); "
                + "did you mean alpaca-sample.json?"), p);
        List<String> far = DataPreview.problems("--data", List.of(dir.resolve("other.json").toString()),
                new Configuration(), 20, false);
        assertTrue(far.get(0).endsWith("does not exist (or is not readable)"), far.get(0));
    }

    @Test
    void aBadRecordAmongTheFirstIsAProblemUnlessSkippedOneDeeperIsNot() throws Exception {
        Path early = Files.writeString(dir.resolve("early.jsonl"), GOOD + "{\"instruction\": \"x\"}\n");
        Path deep = Files.writeString(dir.resolve("deep.jsonl"), GOOD.repeat(5) + "{\"instruction\": \"x\"}\n");
        List<String> p = DataPreview.problems("--data", List.of(early.toString(), deep.toString()),
                new Configuration(), 5, false);
        assertEquals(1, p.size(), p.toString());
        assertTrue(p.get(0).startsWith("--data file:" + early + ":2: ") && p.get(0).contains("--skip-bad-records"),
                p.get(0));
        assertEquals(List.of(), DataPreview.problems("--data", List.of(early.toString()), new Configuration(), 5, true));
    }

    @Test
    void aBrokenJsonArrayIsAProblemEvenWhenSkipping() throws Exception {
        Path broken = Files.writeString(dir.resolve("broken.json"), "[{\"instruction\": \"a\", \"output\": ");
        List<String> p = DataPreview.problems("--data", List.of(broken.toString()), new Configuration(), 5, true);
        assertEquals(1, p.size(), p.toString());
        assertTrue(p.get(0).contains("broken.json"), p.get(0));
    }

    @Test
    void editDistanceCountsSingleEdits() {
        assertEquals(2, DataPreview.editDistance("sampel", "sample"));
        assertEquals(1, DataPreview.editDistance("data.json", "data.jsonl"));
        assertEquals(0, DataPreview.editDistance("a", "a"));
    }
}
