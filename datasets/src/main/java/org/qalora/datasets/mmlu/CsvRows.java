package org.qalora.datasets.mmlu;

import java.util.ArrayList;
import java.util.List;

/**
 * RFC 4180 CSV, as the MMLU files are written (Python's csv module / pandas): comma-separated fields, a field in
 * double quotes may hold commas, newlines and doubled quotes ({@code ""}); rows end with LF or CRLF. Field text is
 * kept exactly (no trimming, no type guessing), so a choice "0.50" stays "0.50".
 */
final class CsvRows {
    private CsvRows() {}

    /** A parsed row and the 1-based line it starts on (for error messages). */
    record Row(int line, List<String> fields) {}

    static List<Row> parse(String text, String file) {
        List<Row> rows = new ArrayList<>();
        List<String> fields = new ArrayList<>();
        StringBuilder field = new StringBuilder();
        int line = 1, rowLine = 1;
        boolean quoted = false, wasQuoted = false, rowHasContent = false;
        int i = text.startsWith("\uFEFF") ? 1 : 0;                        // a UTF-8 BOM is not part of the first field
        for (; i < text.length(); i++) {
            char c = text.charAt(i);
            if (quoted) {
                if (c == '"') {
                    if (i + 1 < text.length() && text.charAt(i + 1) == '"') {
                        field.append('"');
                        i++;
                    } else {
                        quoted = false;
                    }
                } else {
                    if (c == '\n') {
                        line++;
                    }
                    field.append(c);
                }
                continue;
            }
            switch (c) {
                case '"' -> {
                    if (!field.isEmpty() || wasQuoted) {
                        throw new IllegalArgumentException(file + ":" + line + ": a quote inside an unquoted field"
                                + " (quote the whole field and double the quote: \"\")");
                    }
                    quoted = true;
                    wasQuoted = true;
                    rowHasContent = true;
                }
                case ',' -> {
                    fields.add(field.toString());
                    field.setLength(0);
                    wasQuoted = false;
                    rowHasContent = true;
                }
                case '\r' -> {
                    if (i + 1 >= text.length() || text.charAt(i + 1) != '\n') {
                        field.append(c);
                    }
                }
                case '\n' -> {
                    if (rowHasContent || !field.isEmpty()) {
                        fields.add(field.toString());
                        rows.add(new Row(rowLine, List.copyOf(fields)));
                    }
                    fields.clear();
                    field.setLength(0);
                    wasQuoted = false;
                    rowHasContent = false;
                    rowLine = ++line;
                }
                default -> {
                    if (wasQuoted) {
                        throw new IllegalArgumentException(file + ":" + line + ": text after a closing quote");
                    }
                    field.append(c);
                    rowHasContent = true;
                }
            }
        }
        if (quoted) {
            throw new IllegalArgumentException(file + ":" + rowLine + ": a quoted field is never closed");
        }
        if (rowHasContent || !field.isEmpty()) {
            fields.add(field.toString());
            rows.add(new Row(rowLine, List.copyOf(fields)));
        }
        return rows;
    }
}
