package org.qalora.driver.checkpoint;

import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

/**
 * Test hook, set with the Spark conf key {@value #CONF_KEY}: the driver stops at one named step of a commit
 * protocol, says so on its progress output, and waits there forever, so that a test can SIGKILL the real process at
 * exactly that step and check what a restarted driver makes of the files it left. Windows that last microseconds
 * (between two renames) cannot be hit reliably any other way. The steps:
 * <ul>
 *   <li>{@code round-renamed:R}: round R's directory has been renamed into place (it is committed), but its line
 *   of {@code metrics.jsonl} is not written and older rounds are not pruned yet;
 *   <li>{@code version-renamed}: the published model's directory has been renamed to its version name (complete,
 *   with its manifest), but {@code LATEST} does not name it yet;
 *   <li>{@code latest-flipped}: {@code LATEST} names the new version, and {@code --keep-versions} has not deleted
 *   any older version yet.
 * </ul>
 * Unset (the default) it does nothing.
 */
public final class HoldPoint {
    public static final String CONF_KEY = "spark.qalora.test.holdAt";
    public static final String VERSION_RENAMED = "version-renamed";
    public static final String LATEST_FLIPPED = "latest-flipped";
    /** The line printed when holding starts with this, followed by the step's name. */
    public static final String HOLDING = "test hold: holding at ";

    private static final HoldPoint NONE = new HoldPoint(null, s -> {});

    private final String step;
    private final Consumer<String> progress;

    private HoldPoint(String step, Consumer<String> progress) {
        this.step = step;
        this.progress = progress;
    }

    public static HoldPoint none() { return NONE; }

    /** {@code spec}: the conf value (blank for none); {@code progress}: where the holding line goes. */
    public static HoldPoint parse(String spec, Consumer<String> progress) {
        if (spec == null || spec.isBlank()) {
            return NONE;
        }
        if (!spec.equals(VERSION_RENAMED) && !spec.equals(LATEST_FLIPPED) && !spec.matches("round-renamed:\\d+")) {
            throw new IllegalArgumentException(CONF_KEY + "=" + spec + ": expected round-renamed:ROUND, "
                    + VERSION_RENAMED + " or " + LATEST_FLIPPED);
        }
        return new HoldPoint(spec, progress);
    }

    public static String roundRenamed(int round) { return "round-renamed:" + round; }

    /** Called by the commit protocols at each step; holds forever if it is the configured one. */
    public void reached(String reachedStep) {
        if (step == null || !step.equals(reachedStep)) {
            return;
        }
        progress.accept(HOLDING + step + " (pid " + ProcessHandle.current().pid() + "): waiting to be killed");
        while (true) {
            LockSupport.park(this); // park may return spuriously: the loop keeps the hold
        }
    }
}
