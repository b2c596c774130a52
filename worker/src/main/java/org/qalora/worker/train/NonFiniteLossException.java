package org.qalora.worker.train;

/** Thrown when the loss or a gradient of an optimizer step is NaN or infinite; names the global step. */
public final class NonFiniteLossException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final long step;
    private final String what;

    public NonFiniteLossException(long step, String what) {
        super("non-finite " + what + " at global step " + step
                + ": lower the learning rate, check the data of this step, or resume from the previous checkpoint");
        this.step = step;
        this.what = what;
    }

    /** What was not finite, e.g. {@code "loss NaN"} or {@code "gradient norm Infinity"}. */
    public String what() { return what; }

    /** The 1-based global optimizer step that produced the non-finite value. */
    public long step() { return step; }
}
