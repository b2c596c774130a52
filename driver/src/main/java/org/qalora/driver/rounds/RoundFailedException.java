package org.qalora.driver.rounds;

/** A round's Spark job failed for good: names the round, the cause, and the committed round that is kept. */
public final class RoundFailedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public RoundFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
