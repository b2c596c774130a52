package org.qalora.datasets.read;

import java.io.Closeable;
import java.io.IOException;

/** Streams the records of one file, one at a time, in file order. */
public interface RecordReader extends Closeable {
    /** The next record or rejection, or null at the end of the file. */
    ReadResult next() throws IOException;

    /** SHA-256 (hex) of every byte of the file; valid once {@link #next()} has returned null. */
    String fileSha256() throws IOException;
}
