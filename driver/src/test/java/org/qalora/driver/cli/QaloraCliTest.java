package org.qalora.driver.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.worker.backend.cuda.CudaBackend;
import picocli.CommandLine;

class QaloraCliTest {
    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {}

    private static Run run(String... args) {
        CommandLine cli = QaloraCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void helpListsEveryCommand() {
        Run r = run("--help");
        assertEquals(0, r.code());
        for (String c : new String[] {"train", "quantize", "prepare", "tokenize", "eval-batch", "merge", "generate",
                "eval", "export"}) {
            assertTrue(r.out().contains("  " + c + " "), c + " missing from:\n" + r.out());
        }
        Run t = run("train", "--help");
        assertTrue(t.out().contains("--steps-per-round") && t.out().contains("NOT a trained model"), t.out());
    }

    @Test
    void badSettingsFailWithOneClearLine() throws Exception {
        Run r = run("train", "--slots", "0", "--output", dir.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("qalora train: bad train settings: slots must be >= 1, got 0"), r.err());
        Path job = Files.writeString(dir.resolve("job.yaml"), "stepz: 3\n");
        Run y = run("train", "--job", job.toString());
        assertTrue(y.err().contains("unknown setting 'stepz'"), y.err());
    }

    @Test
    void badDeviceSettingsFailBeforeAnyWork() {
        Path out = dir.resolve("out");
        Run r = run("train", "--device", "gpu:x", "--output", out.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("qalora train: bad train settings: device 'gpu:x' is not one of auto, cpu, gpu,"
                + " gpu:N"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        Run p = run("train", "--precision", "bf16", "--device", "cpu", "--output", out.toString());
        assertEquals(1, p.code());
        assertTrue(p.err().startsWith("qalora train: bad train settings: precision bf16 needs a GPU"), p.err());
        Run q = run("train", "--precision", "fp16", "--output", out.toString());
        assertTrue(q.err().contains("precision 'fp16' is not a precision"), q.err());
        assertFalse(Files.exists(out), "nothing written");
    }

    @Test
    void aGpuThatCannotBeUsedInLocalModeFailsWithTheReasonBeforeAnyWork() {
        String why = CudaBackend.unusableReason(0);
        Assumptions.assumeTrue(why != null, "GPU 0 is usable on this machine");
        Path out = dir.resolve("gpu-out");
        for (String device : new String[] {"gpu", "gpu:0"}) {
            Run r = run("train", "--device", device, "--master", "local[2]", "--output", out.toString());
            assertEquals(1, r.code());
            assertTrue(r.err().startsWith("qalora train: --device " + device + " was asked for but GPU 0 cannot be used"
                    + " on this machine: " + why), r.err());
            assertFalse(Files.exists(out), "nothing written");
        }
    }
}
