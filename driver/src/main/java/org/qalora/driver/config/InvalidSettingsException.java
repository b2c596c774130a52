package org.qalora.driver.config;

import java.util.List;

/**
 * Settings refused before any work started and before anything was written: every problem found, one per line,
 * so that a user fixes them all in one go. {@code qalora} exits 2 for it (a usage error), 1 for a failure during
 * the work itself.
 */
public final class InvalidSettingsException extends IllegalArgumentException {
    private final List<String> problems;

    public InvalidSettingsException(String what, List<String> problems) {
        super(message(what, problems));
        this.problems = List.copyOf(problems);
    }

    /** One problem, its message as it is (a command's own one-line refusal). */
    public InvalidSettingsException(String problem) {
        super(problem);
        this.problems = List.of(problem);
    }

    public List<String> problems() { return problems; }

    private static String message(String what, List<String> problems) {
        if (problems.size() == 1) {
            return what + ": " + problems.get(0);
        }
        StringBuilder sb = new StringBuilder(what).append(" (").append(problems.size()).append(" problems):");
        for (String p : problems) {
            sb.append(System.lineSeparator()).append("  - ").append(p);
        }
        return sb.toString();
    }
}
