package org.qalora.driver.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.driver.eval.CliRun;

/**
 * A new user's first hour (issue 14), through the real command line ({@link QaloraCli}) on real files: each usual
 * mistake ends in one clear message that says what to do, and doing it succeeds, with no manual clean-up. Small
 * settings (the demo model, 1-2 rounds of 1 step of 8 sequences) keep each run to seconds.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class FirstHourTest {
    private static final Path SAMPLE = CliRun.repo().resolve("samples/alpaca-sample.json");

    @TempDir
    Path dir;

    private static CliRun train(Path output, String... more) {
        List<String> args = new ArrayList<>(List.of("train", "--output", output.toString(), "--master", "local[2]",
                "--steps-per-round", "1", "--batch-size", "8"));
        args.addAll(Arrays.asList(more));
        if (!args.contains("--slots")) {
            args.addAll(List.of("--slots", "2"));
        }
        if (!args.contains("--rounds")) {
            args.addAll(List.of("--rounds", "1"));
        }
        return CliRun.of(args.toArray(String[]::new));
    }

    /** Refused with exit 2 and a single "qalora train:" message holding every {@code expected} text. */
    private static void refused(CliRun r, String... expected) {
        assertEquals(2, r.code(), r.err());
        assertEquals(1, r.err().lines().filter(l -> l.startsWith("qalora train:")).count(), r.err());
        for (String e : expected) {
            assertTrue(r.err().contains(e), "missing '" + e + "' in:\n" + r.err());
        }
    }

    private static void succeeded(CliRun r) {
        assertEquals(0, r.code(), r.err() + r.out());
        assertTrue(r.out().contains("qalora: done: merged quantized model in "), r.out());
    }

    @Test
    void aTypoInDataAndBadBitsAreReportedTogetherBeforeAnythingIsWritten() {
        Path out = dir.resolve("run");
        CliRun typo = train(out, "--data", SAMPLE.resolveSibling("alpaca-sampel.json").toString(), "--bits", "5");
        refused(typo, "--bits must be 2, 3, 4 or 8", "alpaca-sampel.json does not exist (or is not readable); did you mean "
                + "alpaca-sample.json?");
        assertFalse(Files.exists(out), "a refused run writes nothing");
        CliRun group = train(out, "--data", SAMPLE.toString(), "--group-size", "48");
        refused(group, "--group-size 48 does not divide the input dimension(s) [64, 128] of the demo model's "
                + "projections; pick a group size that divides 64 and 128: 64, 32 or 16");
        assertFalse(Files.exists(out));
        succeeded(train(out, "--data", SAMPLE.toString()));
    }

    @Test
    void aRelativePathResumesTheRunThatWasGivenTheAbsoluteOne() throws IOException {
        Path out = dir.resolve("run");
        succeeded(train(out, "--data", SAMPLE.toString()));
        String relative = Path.of("").toAbsolutePath().relativize(SAMPLE).toString();
        assertFalse(Path.of(relative).isAbsolute());
        CliRun again = train(out, "--data", relative);
        succeeded(again);
        assertTrue(again.out().contains("holds this run (same settings): continuing it"), again.out());
        assertFalse(again.out().contains("round 1/1: loss"), "nothing retrained:\n" + again.out());
        assertTrue(Files.readString(out.resolve("run.json")).contains("\"file:" + SAMPLE + "\""),
                "run.json records the absolute URI");
    }

    @Test
    void anUnrelatedDirectoryIsRefusedThenUsedWithForceKeepingItsFiles() throws IOException {
        Path mine = Files.createDirectories(dir.resolve("mine"));
        Files.writeString(mine.resolve("notes.txt"), "my notes");
        refused(train(mine), "is not empty and holds no qalora run (1 entry: notes.txt)", "pass --force");
        assertEquals(List.of("notes.txt"), names(mine), "nothing written");
        succeeded(train(mine, "--force"));
        assertEquals("my notes", Files.readString(mine.resolve("notes.txt")));
    }

    @Test
    void aRunThatFailedBeforeItsFirstRoundRestartsWithNewSettingsAndForce() throws IOException {
        // Good records first, so that the cheap look at the data passes and the failure comes during the work.
        String good = "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"Hi.\"}\n";
        Path data = Files.writeString(dir.resolve("data.jsonl"), good.repeat(40) + "{\"instruction\": \"x\"}\n");
        Path out = dir.resolve("run");
        CliRun failed = train(out, "--data", data.toString());
        assertEquals(1, failed.code(), "a failure during the work: " + failed.err());
        assertTrue(failed.err().contains("data.jsonl:41") && failed.err().contains("pass --skip-bad-records"),
                failed.err());
        refused(train(out, "--data", data.toString(), "--skip-bad-records"),
                "(skip-bad-records: was false, now true) that stopped before its first committed round: "
                        + "pass --force to replace it");
        CliRun forced = train(out, "--data", data.toString(), "--skip-bad-records", "--force");
        succeeded(forced);
        assertTrue(forced.out().contains("1 bad records skipped"), forced.out());
    }

    @Test
    void moreRoundsExtendAFinishedRunToExactlyWhatAnUninterruptedRunGives() throws IOException {
        // Both runs use the same --output (the first is moved aside), because the published adapter config names
        // the run's own quantized base by path.
        Path run = dir.resolve("run");
        succeeded(train(run, "--data", SAMPLE.toString(), "--rounds", "2"));
        Path straight = Files.move(run, dir.resolve("straight"));

        succeeded(train(run, "--data", SAMPLE.toString()));
        CliRun more = train(run, "--data", SAMPLE.toString(), "--rounds", "2");
        succeeded(more);
        assertTrue(more.out().contains("extending the run in") && more.out().contains("from 1 to 2 rounds"),
                more.out());
        assertTrue(more.out().contains("resuming from committed round 1"), more.out());
        refused(train(run, "--data", SAMPLE.toString(), "--rounds", "1"),
                "holds this run with 2 committed rounds; --rounds 1 is fewer");

        String latest = Files.readString(straight.resolve("LATEST")).strip();
        assertEquals(latest, Files.readString(run.resolve("LATEST")).strip(), "the same final adapter state");
        for (String sub : List.of(latest, "checkpoints/round-00002", "data", "run.json")) {
            assertSameBytes(straight, run, sub);
        }
    }

    /**
     * One slot: every round's state is one averaging part, which publishing turns into the single state file as it
     * does several parts (copying it as a one-file commit failed the version's checksum: found by the CPU claim run,
     * which trains one slot); and the number of parts changes no published byte.
     */
    @Test
    void oneSlotPublishesItsOnePartStateAsTwoPartsWouldBe() throws IOException {
        Path run = dir.resolve("run");
        succeeded(train(run, "--data", SAMPLE.toString(), "--slots", "1"));
        Path onePart = Files.move(run, dir.resolve("one-part"));
        succeeded(train(run, "--data", SAMPLE.toString(), "--slots", "1", "--averaging-parts", "2"));
        String latest = Files.readString(onePart.resolve("LATEST")).strip();
        assertEquals(latest, Files.readString(run.resolve("LATEST")).strip(), "the same version name");
        assertSameBytes(onePart, run, latest);
    }

    /** Every file under {@code sub} of {@code a} has the same bytes in {@code b} (a round's manifest: see below). */
    private static void assertSameBytes(Path a, Path b, String sub) throws IOException {
        try (Stream<Path> files = Files.walk(a.resolve(sub))) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                Path other = b.resolve(a.relativize(f).toString());
                if (f.getFileName().toString().equals("_MANIFEST.json")
                        && f.getParent().getFileName().toString().startsWith("round-")) {
                    assertTrue(Files.exists(other), other.toString());   // its metrics hold wall-clock timings
                } else {
                    assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(other), f + " vs " + other);
                }
            }
        }
    }

    private static List<String> names(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
