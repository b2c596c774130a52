package org.qalora.worker.train;

/**
 * Learning-rate schedules with linear warmup, with the semantics of HF transformers' {@code get_*_schedule_with_warmup}
 * (a LambdaLR stepped after every optimizer step): the step with 0-based index {@code s} uses
 * {@code base * lambda(s)}, so with warmup the very first step runs at lr 0, exactly as in HF.
 */
public enum Schedule {
    CONSTANT, LINEAR, COSINE;

    /**
     * @param s       0-based index of the optimizer step (number of steps already taken)
     * @param warmup  warmup steps
     * @param total   total steps of the run (for linear and cosine decay)
     */
    public double multiplier(long s, long warmup, long total) {
        if (s < warmup) {
            return (double) s / Math.max(1, warmup);
        }
        return switch (this) {
            case CONSTANT -> 1.0;
            case LINEAR -> Math.max(0.0, (double) (total - s) / Math.max(1, total - warmup));
            case COSINE -> {
                double progress = (double) (s - warmup) / Math.max(1, total - warmup);
                yield Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * progress)));
            }
        };
    }

    public static Schedule parse(String name) {
        for (Schedule s : values()) {
            if (s.name().equalsIgnoreCase(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown lr schedule '" + name + "': use constant, linear or cosine");
    }
}
