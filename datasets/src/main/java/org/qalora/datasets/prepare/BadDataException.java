package org.qalora.datasets.prepare;

/** The input data has a problem that stops prepare; the message names the file, line or row, and the reason. */
public final class BadDataException extends RuntimeException {
    public BadDataException(String message) {
        super(message);
    }
}
