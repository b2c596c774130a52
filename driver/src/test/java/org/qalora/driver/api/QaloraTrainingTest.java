package org.qalora.driver.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.config.InvalidSettingsException;

/**
 * The notebook API on a plain SparkSession, as a notebook has one (local[2], Spark's defaults: no Kryo registrator,
 * nothing of ours configured): fit publishes and returns the metrics as a DataFrame, leaves the session running
 * with its settings unchanged; fitAsync can be cancelled mid-run, and a later fit resumes the committed rounds.
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class QaloraTrainingTest {
    @TempDir
    static Path dir;
    private static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = SparkSession.builder().master("local[2]").appName("notebook").config("spark.ui.enabled", "false")
                .getOrCreate();
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    @Test
    void fitPublishesAndReturnsTheMetricsWithoutTouchingTheSession() throws Exception {
        Map<String, String> before = scala.jdk.javaapi.CollectionConverters.asJava(spark.conf().getAll());
        List<String> lines = Collections.synchronizedList(new ArrayList<>());
        TrainingResult r = QaloraTraining.on(spark).output(dir.resolve("fit").toString()).rounds(2).stepsPerRound(2)
                .progress(lines::add).fit();
        assertTrue(Files.isRegularFile(Path.of(java.net.URI.create(r.published())).resolve("config.json")),
                "published model at " + r.published());
        List<Row> rows = r.metrics().select("round", "loss", "tokensPerSecond").collectAsList();
        assertEquals(2, rows.size(), "one metrics row per round");
        assertEquals(1L, rows.get(0).getLong(0));
        assertTrue(rows.get(1).getDouble(1) > 0, "loss of round 2");
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("round 2/2")), "progress lines: " + lines);
        assertFalse(spark.sparkContext().isStopped(), "the session must keep running");
        assertEquals(before, scala.jdk.javaapi.CollectionConverters.asJava(spark.conf().getAll()), "the session's settings must be left as they were");
    }

    @Test
    void anUnknownSettingIsRefusedWithTheNamesThereAre() {
        InvalidSettingsException e = assertThrows(InvalidSettingsException.class,
                () -> QaloraTraining.on(spark).set("learning-rate", 1e-3));
        assertTrue(e.getMessage().contains("'learning-rate' is not a setting") && e.getMessage().contains("lr"),
                e.getMessage());
        InvalidSettingsException master = assertThrows(InvalidSettingsException.class,
                () -> QaloraTraining.on(spark).set("master", "yarn"));
        assertTrue(master.getMessage().contains("the session's master decides"), master.getMessage());
        // A value of the wrong type is refused when it is set, naming the setting, not when fit starts.
        IllegalArgumentException type = assertThrows(IllegalArgumentException.class,
                () -> QaloraTraining.on(spark).set("rounds", "many"));
        assertEquals("QaloraTraining: 'rounds' must be a number, got 'many'", type.getMessage());
    }

    @Test
    void fitAsyncCancelsMidRunAndALaterFitResumes() throws Exception {
        String out = dir.resolve("async").toString();
        CountDownLatch firstRound = new CountDownLatch(1);
        TrainingRun run = QaloraTraining.on(spark).output(out).rounds(40).stepsPerRound(2)
                .progress(l -> { if (l.startsWith("round 1/")) firstRound.countDown(); }).fitAsync();
        assertTrue(firstRound.await(4, TimeUnit.MINUTES), "round 1 never committed");
        run.cancel();
        // A future completed with a CancellationException throws it as is from get().
        assertThrows(java.util.concurrent.CancellationException.class, () -> run.result().get(2, TimeUnit.MINUTES));
        assertFalse(spark.sparkContext().isStopped(), "cancel must not stop the session");
        List<String> lines = Collections.synchronizedList(new ArrayList<>());
        TrainingResult r = QaloraTraining.on(spark).output(out).rounds(3).stepsPerRound(2).progress(lines::add).fit();
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("resuming from committed round")), "resumed: " + lines);
        assertEquals(3, r.metrics().count());
    }
}
