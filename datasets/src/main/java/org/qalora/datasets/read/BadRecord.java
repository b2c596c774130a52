package org.qalora.datasets.read;

import java.io.Serializable;

/**
 * A rejected record.
 *
 * @param recordId where it is: {@code file:line} (JSONL), {@code file[index]} (JSON array element or Parquet row)
 * @param reason   the kind of problem
 * @param detail   what exactly is wrong and how to fix it
 */
public record BadRecord(String recordId, BadRecordReason reason, String detail) implements Serializable {
    public String message() {
        return recordId + ": " + reason.text() + ": " + detail;
    }
}
