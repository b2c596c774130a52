package org.qalora.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.io.TempDir;

/**
 * The notebook API driven the way a Scala notebook kernel drives Spark: the Scala 2.13 REPL
 * ({@code scala.tools.nsc.MainGenericRunner}, what Spark's spark-shell wraps; spark-repl itself is not served by
 * this build's registry) in a JVM of its own, fed a script on standard input that opens a SparkSession as a notebook
 * attached to a cluster has one ({@code local-cluster}: its executor is a JVM of its own), trains the fixture model
 * on a real HDFS (MiniDFSCluster, in this JVM) through the builder, prints what the result says, and checks that the
 * session is still running.
 */
class NotebookReplTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void theReplTrainsOnHdfsThroughTheBuilderWithAnExecutorProcessAndKeepsItsSession() throws Exception {
        try (TestCluster hdfs = new TestCluster(dir)) {
            hdfs.putTinyTrainingInputs();
            String out = hdfs.uri("/runs/notebook");
            // What a notebook's cluster settings would say; here: one executor JVM that finds our classes and flags.
            Path sparkHome = Path.of(System.getProperty("qalora.spark.home", "target/spark-home"));
            Files.createDirectories(sparkHome.resolve("jars"));
            String script = String.join("\n",
                    "val spark = org.apache.spark.sql.SparkSession.builder().master(\"local-cluster[1,1,1024]\")"
                            + ".appName(\"notebook\").config(\"spark.ui.enabled\", \"false\")"
                            + ".config(\"spark.driver.host\", \"127.0.0.1\").config(\"spark.hadoop.dfs.replication\", \"1\")"
                            + ".config(\"spark.executor.extraClassPath\", \"" + System.getProperty("surefire.test.class.path") + "\")"
                            + ".config(\"spark.executor.extraJavaOptions\", \"" + System.getProperty("qalora.jvm.flags", "") + "\")"
                            + ".getOrCreate()",
                    "import org.qalora.driver.api._",
                    "val result = QaloraTraining.on(spark).model(\"" + hdfs.uri("/models/tiny-gptq") + "\")"
                            + ".set(\"tokenizer\", \"" + hdfs.uri("/tok/tokenizer.json") + "\")"
                            + ".data(\"" + hdfs.uri("/data/alpaca.json") + "\").output(\"" + out + "\")"
                            + ".rounds(2).stepsPerRound(1).device(\"cpu\").set(\"batch-size\", 4)"
                            + ".progress(l => println(\"progress: \" + l)).fit()",
                    "println(\"PUBLISHED=\" + result.published)",
                    "println(\"ROUNDS=\" + result.metrics.count())",
                    "println(\"LOSS_COLUMN=\" + result.metrics.columns.contains(\"loss\"))",
                    "println(\"EXECUTORS=\" + spark.sparkContext.getExecutorMemoryStatus.size)",
                    "println(\"STOPPED=\" + spark.sparkContext.isStopped)",
                    ":quit", "");
            String output = runRepl(script);
            assertTrue(output.contains("PUBLISHED=" + out + "/v-"), "REPL output:\n" + output);
            assertTrue(output.contains("ROUNDS=2"), "REPL output:\n" + output);
            assertTrue(output.contains("LOSS_COLUMN=true"), "REPL output:\n" + output);
            assertTrue(output.contains("STOPPED=false"), "REPL output:\n" + output);
            RunOutput run = new RunOutput(hdfs.fs(), out);
            assertTrue(run.latest().isPresent(), "the run published on HDFS");
            run.checkNothingHalfWrittenIsVisible("after the notebook's fit");
            for (JsonNode round : RunOutput.withoutTimings(hdfs.fs().open(new org.apache.hadoop.fs.Path(out,
                    "checkpoints/metrics.jsonl")).readAllBytes())) {
                for (JsonNode device : round.get("slotDevices")) {
                    assertTrue(device.asText().startsWith("0/"), "round " + round.get("round") + " trained a slot on "
                            + device.asText() + ", not on the executor process 0");
                }
            }
        }
    }

    private String runRepl(String script) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(Arrays.asList(System.getProperty("qalora.jvm.flags", "").trim().split("\\s+")));
        cmd.addAll(List.of("-Xmx2g", "-Dscala.usejavacp=true",
                "-Dqalora.root=" + System.getProperty("qalora.root", ".."), "-cp",
                System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                "scala.tools.nsc.MainGenericRunner", "-usejavacp"));
        Path log = dir.resolve("repl.log");
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        try (OutputStream in = p.getOutputStream()) {
            in.write(script.getBytes(StandardCharsets.UTF_8));
        }
        boolean done = p.waitFor(5, TimeUnit.MINUTES);
        if (!done) {
            p.destroyForcibly();
        }
        String output = Files.readString(log);
        assertTrue(done, "the REPL did not finish in 5 minutes:\n" + output);
        assertEquals(0, p.exitValue(), "REPL exit status; output:\n" + output);
        return output;
    }
}
