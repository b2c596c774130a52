package org.qalora.driver.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.eval.CliRun;
import org.qalora.worker.backend.cuda.CudaBackend;

class QaloraCliTest {
    @TempDir
    Path dir;

    @Test
    void helpListsEveryCommand() {
        CliRun r = CliRun.of("--help");
        assertEquals(0, r.code());
        for (String c : new String[] {"train", "quantize", "prepare", "tokenize", "eval-batch", "merge", "generate",
                "eval", "export"}) {
            assertTrue(r.out().contains("  " + c + " "), c + " missing from:\n" + r.out());
        }
        CliRun t = CliRun.of("train", "--help");
        assertTrue(t.out().contains("--steps-per-round") && t.out().contains("NOT a trained model"), t.out());
    }

    /** Allowed values and real names in --help, not picocli's {@code <fieldName>} placeholders. */
    @Test
    void helpShowsAllowedValuesAndNoPlaceholders() {
        String train = CliRun.of("train", "--help").out();
        for (String shown : new String[] {"--bits=2|3|4|8", "--lr-schedule=constant|linear|cosine", "--warmup-steps=N",
                "--[no-]skip-bad-records", "--source-max-len=N", "--target-max-len=N", "--method=qalora|lora",
                "--device=auto|cpu|gpu|gpu:N", "--force", "--quantize=gptq|rtn", "--calibration=FILE",
                "--calibration-samples=N", "--calibration-tokens=T"}) {
            assertTrue(train.contains(shown), shown + " missing from:\n" + train);
        }
        for (String command : new String[] {"train", "quantize", "prepare", "tokenize", "eval-batch", "merge", "generate",
                "eval", "export"}) {
            String help = CliRun.of(command, "--help").out();
            assertFalse(help.matches("(?s).*=<[A-Za-z]+>.*"), command + " --help has a placeholder:\n" + help);
        }
    }

    @Test
    void badSettingsFailWithOneClearLine() throws Exception {
        CliRun r = CliRun.of("train", "--slots", "0", "--output", dir.toString());
        assertEquals(2, r.code(), "a usage error");
        assertTrue(r.err().startsWith("qalora train: bad train settings: --slots must be >= 1, got 0"), r.err());
        Path job = Files.writeString(dir.resolve("job.yaml"), "stepz: 3\n");
        CliRun y = CliRun.of("train", "--job", job.toString());
        assertEquals(2, y.code());
        assertTrue(y.err().contains("unknown setting 'stepz'"), y.err());
    }

    @Test
    void badDeviceSettingsFailBeforeAnyWork() {
        Path out = dir.resolve("out");
        CliRun r = CliRun.of("train", "--device", "gpu:x", "--output", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().startsWith("qalora train: bad train settings: device 'gpu:x' is not one of auto, cpu, gpu,"
                + " gpu:N"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        CliRun p = CliRun.of("train", "--precision", "bf16", "--device", "cpu", "--output", out.toString());
        assertEquals(2, p.code());
        assertTrue(p.err().startsWith("qalora train: bad train settings: precision bf16 needs a GPU"), p.err());
        CliRun q = CliRun.of("train", "--precision", "fp16", "--output", out.toString());
        assertTrue(q.err().contains("precision 'fp16' is not a precision"), q.err());
        assertFalse(Files.exists(out), "nothing written");
    }

    @Test
    void aGpuThatCannotBeUsedInLocalModeFailsWithTheReasonBeforeAnyWork() {
        String why = CudaBackend.unusableReason(0);
        Assumptions.assumeTrue(why != null, "GPU 0 is usable on this machine");
        Path out = dir.resolve("gpu-out");
        for (String device : new String[] {"gpu", "gpu:0"}) {
            CliRun r = CliRun.of("train", "--device", device, "--master", "local[2]", "--output", out.toString());
            assertEquals(2, r.code());
            assertTrue(r.err().startsWith("qalora train: cannot start the run (nothing was started or written): "
                    + "--device " + device + " was asked for but GPU 0 cannot be used"
                    + " on this machine: " + why), r.err());
            assertFalse(Files.exists(out), "nothing written");
        }
    }
}
