package org.qalora.datasets.read;

/** Either a valid record or the reason it was rejected; exactly one of the two is non-null. */
public record ReadResult(SourceRecord record, BadRecord bad) {
    public static ReadResult ok(SourceRecord r) {
        return new ReadResult(r, null);
    }

    public static ReadResult bad(String recordId, BadRecordReason reason, String detail) {
        return new ReadResult(null, new BadRecord(recordId, reason, detail));
    }

    public boolean isOk() {
        return record != null;
    }
}
