package org.qalora.datasets.read;

/** Which fields a record has. */
public enum RecordFormat {
    /** {@code instruction}, {@code input} (optional, "" when absent), {@code output}. */
    ALPACA,
    /** {@code inputs} / {@code targets} (FLAN v2 collection), or {@code input} / {@code output} (QLoRA's input-output). */
    FLAN,
    /** Decide per file from the first record (or the Parquet schema): {@code instruction} means Alpaca. */
    AUTO;

    public static RecordFormat parse(String s) {
        try {
            return valueOf(s.toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown format '" + s + "' (expected alpaca, flan or auto)");
        }
    }
}
