package org.qalora.datasets.read;

import java.io.IOException;

/** A file whose structure is broken beyond one record (an unclosed JSON array, a Parquet file without the fields). */
public final class MalformedFileException extends IOException {
    public MalformedFileException(String message) {
        super(message);
    }
}
