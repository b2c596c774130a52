package org.qalora.driver.pipeline;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.config.TrainJob;
import org.qalora.driver.config.TrainJobLoader;
import org.qalora.driver.spark.SparkSettings;
import org.qalora.quant.testing.Fixtures;

/** Bad input to the whole train pipeline (Spark local mode): each refused with a message that names it. */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class TrainPipelineTest {
    @TempDir
    static Path dir;
    private static SparkSession spark;

    @BeforeAll
    static void start() {
        SparkConf conf = SparkSettings.apply(new SparkConf(), "local[2]", "TrainPipelineTest").set("spark.ui.enabled", "false");
        spark = SparkSession.builder().config(conf).getOrCreate();
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    private static TrainJob job(Map<String, Object> flags) {
        Map<String, Object> all = new LinkedHashMap<>(flags);
        all.putIfAbsent("output", dir.resolve("out").toString());
        return TrainJobLoader.build("test", TrainJobLoader.defaults(Fixtures.root().getParent().toString()), all);
    }

    private static RuntimeException fails(TrainJob job) {
        List<String> log = new ArrayList<>();
        return assertThrows(RuntimeException.class,
                () -> new TrainPipeline(Fixtures.root().getParent(), log::add).run(job, spark));
    }

    @Test
    void fewerTrainingRecordsThanABatchIsRefused() throws Exception {
        Path one = Files.writeString(dir.resolve("one.jsonl"),
                "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"Hi.\"}\n");
        // (rtn: with gptq, too few tokens to calibrate on is refused first, before the quantization.)
        RuntimeException e = fails(job(Map.of("data", List.of(one.toString()), "batch-size", 2, "quantize", "rtn",
                "output", dir.resolve("few").toString())));
        assertTrue(e.getMessage().contains("the dataset has 1 records but batch-size is 2"), e.getMessage());
    }

    /** GPTQ's calibration input is checked before anything is quantized: missing, too short, or given to RTN. */
    @Test
    void badCalibrationInputIsRefusedBeforeAnyQuantization() throws Exception {
        Path nope = dir.resolve("nope.txt");
        RuntimeException missing = fails(job(Map.of("calibration", nope.toString(),
                "output", dir.resolve("cal-missing").toString())));
        assertTrue(missing.getMessage().contains("--calibration file:" + nope + " does not exist"), missing.getMessage());
        assertTrue(missing.getMessage().contains("nothing was started or written"), missing.getMessage());

        Path few = Files.writeString(dir.resolve("few.txt"), "Just a few words of text.");
        RuntimeException shortText = fails(job(Map.of("calibration", few.toString(),
                "output", dir.resolve("cal-few").toString())));
        assertTrue(shortText.getMessage().contains("GPTQ calibration needs at least 64 tokens, but --calibration file:"
                + few + " holds only "), shortText.getMessage());
        assertFalse(Files.exists(dir.resolve("cal-few/base-quantized")), "nothing was quantized");

        RuntimeException rtn = assertThrows(RuntimeException.class, () -> job(Map.of("calibration", few.toString(),
                "quantize", "rtn")));
        assertTrue(rtn.getMessage().contains("--calibration is only used by --quantize gptq"), rtn.getMessage());
    }

    @Test
    void missingDataIsNamed() {
        RuntimeException e = fails(job(Map.of("data", List.of(dir.resolve("nope.jsonl").toString()),
                "output", dir.resolve("missing").toString())));
        assertTrue(e.getMessage().contains("--data file:" + dir.resolve("nope.jsonl") + " does not exist"), e.getMessage());
    }

    @Test
    void aTokenizerThatDoesNotFitTheModelIsRefused() {
        RuntimeException e = fails(job(Map.of("model", Fixtures.tinyLlamaGptq().toString(),
                "tokenizer", Fixtures.tokenizer().toString(), "output", dir.resolve("vocab").toString())));
        assertTrue(e.getMessage().contains("produces ids up to 31999 but model") && e.getMessage().contains("vocab_size 512"),
                e.getMessage());
    }

    @Test
    void anOutputFileIsNotADirectory() throws Exception {
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        RuntimeException e = fails(job(Map.of("output", file.toString())));
        assertTrue(e.getMessage().contains("is a file: give a directory"), e.getMessage());
    }
}
