package org.qalora.datasets.read;

/** Why a record was rejected; the manifest counts skipped records per reason under these names. */
public enum BadRecordReason {
    /** The line (JSONL) is not JSON. In a JSON array file the whole file is unreadable past that point. */
    MALFORMED_JSON("not valid JSON"),
    /** Valid JSON but not an object (a number, string or array where a record should be). */
    NOT_AN_OBJECT("not a JSON object"),
    /** A required field (instruction / output, inputs / targets) is absent or null. */
    MISSING_FIELD("missing field"),
    /** A field is present but not a string. */
    WRONG_TYPE("wrong type"),
    /** The output / targets is empty or only whitespace: there would be nothing to learn but EOS. */
    EMPTY_OUTPUT("empty output"),
    /** The record's bytes are not valid UTF-8. */
    INVALID_UTF8("invalid UTF-8"),
    /** Source fields plus output exceed the max-record-chars limit. */
    TOO_LONG("too long");

    private final String text;

    BadRecordReason(String text) {
        this.text = text;
    }

    public String text() {
        return text;
    }
}
