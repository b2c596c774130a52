package org.qalora.driver.rounds;

import java.io.Serializable;

/**
 * Fault injection for tests, set with the Spark conf key {@value #CONF_KEY} = {@code halt:ROUND:SLOT} or
 * {@code throw:ROUND:SLOT}: the first attempt of that task either halts its executor JVM (an executor loss, as a
 * crashed machine) or throws. Spark then retries the task; the result must not change. Only ever fires on attempt 0,
 * so a retried task succeeds.
 */
public record FaultPlan(String mode, int round, int slot) implements Serializable {
    public static final String CONF_KEY = "spark.qalora.test.fault";

    public static FaultPlan none() { return new FaultPlan("none", -1, -1); }

    public static FaultPlan parse(String spec) {
        if (spec == null || spec.isBlank()) {
            return none();
        }
        String[] p = spec.split(":");
        if (p.length != 3 || !(p[0].equals("halt") || p[0].equals("throw"))) {
            throw new IllegalArgumentException(CONF_KEY + "=" + spec + ": expected halt:ROUND:SLOT or throw:ROUND:SLOT");
        }
        return new FaultPlan(p[0], Integer.parseInt(p[1]), Integer.parseInt(p[2]));
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
}
