package org.qalora.driver.rounds;

import java.io.Serializable;
import org.apache.hadoop.fs.Path;
import org.qalora.driver.checkpoint.Storage;

/**
 * Fault injection for tests, set with the Spark conf key {@value #CONF_KEY}:
 * <ul>
 *   <li>{@code halt:ROUND:SLOT} / {@code throw:ROUND:SLOT}: the first attempt of that task either halts its executor
 *   JVM (an executor loss, as a crashed machine) or throws. Spark then retries the task; the result must not
 *   change. Only ever fires on attempt 0, so a retried task succeeds.
 *   <li>{@code stop:ROUND}: the driver stops the run right after committing that round, as a driver crash between
 *   rounds would; rerunning the same command must resume from it.
 *   <li>{@code corrupt:ROUND:SLOT[:TIMES]}: after that task has written its update file (and computed the CRC32C
 *   it returns), one byte of the file is flipped, as a bad disk or a torn copy would. The driver must detect it
 *   and re-run the slot. Fires on the first {@code TIMES} runs of that slot (default 1): the driver's re-runs count,
 *   Spark's own task retries do not, so a large {@code TIMES} makes every re-run fail verification too.
 *   <li>{@code lose:ROUND:SLOT[:TIMES]}: as {@code corrupt}, but the update file is deleted, as the loss of the
 *   DataNodes holding every copy of one of its blocks would leave it ({@code train --update-replication}). The
 *   averaging must refuse it and the driver re-run the slot.
 *   <li>{@code mergehalt:TASK} / {@code mergethrow:TASK}: the first attempt of merge task TASK (0-based; the shards,
 *   then the task writing the small files) halts its executor JVM after writing its files into its attempt directory
 *   (before they are renamed into the model directory), or throws after the rename. Either way Spark retries it and
 *   the published model must not change.
 *   <li>{@code averagehalt:ROUND:PART} / {@code averagethrow:ROUND:PART}: the first attempt of averaging task PART
 *   (0-based key range) of that round halts its executor JVM after averaging, before its part file is written, or
 *   throws after the part file is renamed into the round's commit directory. Spark retries it; the committed state
 *   must not change.
 *   <li>{@code calibrationhalt:LAYER:CHUNK}: the first attempt of the GPTQ calibration task of chunk CHUNK in the
 *   first stage of layer LAYER halts its executor JVM after writing its partial Hessians, before it reports: the
 *   chunk's hidden states kept in that executor's memory are lost with it. Spark retries the task; the quantized
 *   model must not change.
 * </ul>
 */
public record FaultPlan(String mode, int round, int slot, int times) implements Serializable {
    public static final String CONF_KEY = "spark.qalora.test.fault";

    public static FaultPlan none() { return new FaultPlan("none", -1, -1, 0); }

    public static FaultPlan parse(String spec) {
        if (spec == null || spec.isBlank()) {
            return none();
        }
        String[] p = spec.split(":");
        if (p.length == 2 && p[0].equals("stop")) {
            return new FaultPlan("stop", Integer.parseInt(p[1]), -1, 1);
        }
        if ((p.length == 3 || p.length == 4) && (p[0].equals("corrupt") || p[0].equals("lose"))) {
            return new FaultPlan(p[0], Integer.parseInt(p[1]), Integer.parseInt(p[2]),
                    p.length == 4 ? Integer.parseInt(p[3]) : 1);
        }
        if (p.length == 2 && (p[0].equals("mergehalt") || p[0].equals("mergethrow"))) {
            return new FaultPlan(p[0], -1, Integer.parseInt(p[1]), 1);
        }
        if (p.length == 3 && p[0].equals("calibrationhalt")) {
            return new FaultPlan(p[0], Integer.parseInt(p[1]), Integer.parseInt(p[2]), 1);
        }
        if (p.length == 3 && (p[0].equals("averagehalt") || p[0].equals("averagethrow"))) {
            return new FaultPlan(p[0], Integer.parseInt(p[1]), Integer.parseInt(p[2]), 1);
        }
        if (p.length != 3 || !(p[0].equals("halt") || p[0].equals("throw"))) {
            throw new IllegalArgumentException(CONF_KEY + "=" + spec + ": expected halt:ROUND:SLOT, throw:ROUND:SLOT, "
                    + "corrupt:ROUND:SLOT[:TIMES], lose:ROUND:SLOT[:TIMES], stop:ROUND, mergehalt:TASK, mergethrow:TASK, averagehalt:ROUND:PART, "
                    + "averagethrow:ROUND:PART or calibrationhalt:LAYER:CHUNK");
        }
        return new FaultPlan(p[0], Integer.parseInt(p[1]), Integer.parseInt(p[2]), 1);
    }

    /** Called by the driver after committing {@code committedRound}. */
    public void maybeStop(int committedRound) {
        if (mode.equals("stop") && committedRound == round) {
            throw new RunStoppedException("qalora fault injection: run stopped after committing round " + round);
        }
    }

    /** The injected stop of {@link #maybeStop}. */
    public static final class RunStoppedException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        RunStoppedException(String message) {
            super(message);
        }
    }

    /** Called by the task after training, before writing its update: the worst moment to die. */
    public void maybeFire(int taskRound, int taskSlot, int attempt) {
        if (attempt != 0 || taskRound != round || taskSlot != slot) {
            return;
        }
        if (mode.equals("halt")) {
            System.err.println("qalora fault injection: halting executor JVM in round " + round + " slot " + slot);
            Runtime.getRuntime().halt(1);
        } else if (mode.equals("throw")) {
            throw new IllegalStateException("qalora fault injection: failing attempt 0 of round " + round + " slot " + slot);
        }
    }

    /**
     * Called by averaging task {@code part} of round {@code taskRound}: {@code averagehalt} halts the executor on
     * attempt 0 before the part file is written, {@code averagethrow} throws on attempt 0 after it is renamed into
     * place (the retry finds it there and keeps it).
     */
    public void maybeFireInAveraging(int taskRound, int part, int attempt, MergePhase phase) {
        if (attempt != 0 || taskRound != round || part != slot) {
            return;
        }
        if (mode.equals("averagehalt") && phase == MergePhase.BEFORE_RENAME) {
            System.err.println("qalora fault injection: halting executor JVM in round " + round + " averaging task " + part);
            Runtime.getRuntime().halt(1);
        } else if (mode.equals("averagethrow") && phase == MergePhase.AFTER_RENAME) {
            throw new IllegalStateException("qalora fault injection: failing attempt 0 of round " + round
                    + " averaging task " + part + " after its part file was renamed into place");
        }
    }

    /** Called by a GPTQ calibration task when its partial Hessians are written ({@code calibrationhalt}). */
    public void maybeFireInCalibration(int layer, int stage, int chunk, int attempt) {
        if (mode.equals("calibrationhalt") && attempt == 0 && stage == 0 && layer == round && chunk == slot) {
            System.err.println("qalora fault injection: halting executor JVM in GPTQ calibration, layer " + layer
                    + " chunk " + chunk);
            Runtime.getRuntime().halt(1);
        }
    }

    /** Where in a merge (or averaging) task {@link #maybeFireInMerge} is called. */
    public enum MergePhase { BEFORE_RENAME, AFTER_RENAME }

    /**
     * Called by merge task {@code task}: {@code mergehalt} halts the executor on attempt 0 before the rename (a lost
     * executor, its files only in its attempt directory), {@code mergethrow} throws on attempt 0 after it (the retry
     * finds the files in place).
     */
    public void maybeFireInMerge(int task, int attempt, MergePhase phase) {
        if (attempt != 0 || task != slot) {
            return;
        }
        if (mode.equals("mergehalt") && phase == MergePhase.BEFORE_RENAME) {
            System.err.println("qalora fault injection: halting executor JVM in merge task " + task);
            Runtime.getRuntime().halt(1);
        } else if (mode.equals("mergethrow") && phase == MergePhase.AFTER_RENAME) {
            throw new IllegalStateException("qalora fault injection: failing attempt 0 of merge task " + task
                    + " after its files were renamed into place");
        }
    }

    /**
     * Called by the task right after its update file {@code file} is in place, on the driver's {@code rerun}-th run
     * of the slot (0 = the round's first job). {@code corrupt} flips one bit of the file's last byte: the high byte of
     * the last float (an Adam v value), so the file still parses and only its checksum tells; {@code lose} deletes it.
     */
    public void maybeCorrupt(int taskRound, int taskSlot, int rerun, Storage storage, Path file) {
        if (!(mode.equals("corrupt") || mode.equals("lose")) || taskRound != round || taskSlot != slot
                || rerun >= times) {
            return;
        }
        if (mode.equals("lose")) {
            storage.delete(file);
            System.err.println("qalora fault injection: deleted " + file + " (round " + round + " slot " + slot
                    + ", run " + rerun + ")");
            return;
        }
        byte[] bytes = storage.readAll(file);
        bytes[bytes.length - 1] ^= 0x01;
        storage.writeAtomically(file, bytes);
        System.err.println("qalora fault injection: corrupted one byte of " + file + " (round " + round + " slot "
                + slot + ", run " + rerun + ")");
    }
}
