package org.qalora.datasets.prepare;

import java.io.Serializable;

/**
 * The part of one input file one task prepares: the whole file, or for a large JSONL file the lines that start in
 * [start, end) bytes, the first of them being line {@code firstLine}.
 *
 * @param end   exclusive; -1 means to the end of the file
 * @param sha256 SHA-256 of the whole file when a split pass computed it; null when the task computes it itself
 */
record InputUnit(int fileIndex, int splitIndex, String location, long start, long end, long firstLine, String sha256)
        implements Serializable {

    static InputUnit wholeFile(int fileIndex, String location) {
        return new InputUnit(fileIndex, 0, location, 0, -1, 1, null);
    }

    boolean isWholeFile() {
        return start == 0 && end < 0;
    }
}
