package org.qalora.datasets.read;

import java.io.Serializable;
import java.util.function.Function;

/**
 * Maps the fields of one raw record to a {@link SourceRecord} or a {@link BadRecord}.
 * In {@link RecordFormat#AUTO} the first record that names its fields fixes the format for the rest of the file,
 * so one file cannot mix Alpaca and FLAN records.
 */
public final class RecordValidator {

    /** Limits applied to every record. */
    public record Limits(int maxRecordChars) implements Serializable {
        /** 200,000 characters: far above any Alpaca or FLAN record, low enough to stop a runaway line. */
        public static final Limits DEFAULT = new Limits(200_000);

        public Limits {
            if (maxRecordChars < 1) {
                throw new IllegalArgumentException("max record chars must be >= 1, got " + maxRecordChars);
            }
        }
    }

    private RecordFormat format;
    private final Limits limits;

    public RecordValidator(RecordFormat format, Limits limits) {
        this.format = format;
        this.limits = limits;
    }

    /** The format in force (AUTO until the first record decided it). */
    public RecordFormat format() {
        return format;
    }

    /**
     * @param fields looks a field up by name: null when absent (or JSON null), else its {@link FieldValue}
     * @param has    whether the raw record has a field of that name at all (to decide AUTO)
     */
    public ReadResult validate(String recordId, Function<String, FieldValue> fields, Function<String, Boolean> has) {
        if (format == RecordFormat.AUTO) {
            if (has.apply("instruction")) {
                format = RecordFormat.ALPACA;
            } else if (has.apply("inputs") || has.apply("targets") || has.apply("input") || has.apply("output")) {
                format = RecordFormat.FLAN;
            } else {
                // No flag named: train and eval read records too and have no --format, and forcing a format would
                // not give this record the field it lacks.
                return ReadResult.bad(recordId, BadRecordReason.MISSING_FIELD, "cannot tell the format: no "
                        + "\"instruction\" (Alpaca) nor \"inputs\"/\"targets\" (FLAN) field: is it a record of either?");
            }
        }
        String instruction = null;
        String input;
        String output;
        String inputName;
        String outputName;
        if (format == RecordFormat.ALPACA) {
            FieldValue ins = fields.apply("instruction");
            if (ins == null) {
                return ReadResult.bad(recordId, BadRecordReason.MISSING_FIELD, "\"instruction\" is required");
            }
            if (ins.text() == null) {
                return wrongType(recordId, "instruction", ins);
            }
            instruction = ins.text();
            inputName = "input";
            outputName = "output";
        } else {
            inputName = has.apply("inputs") ? "inputs" : "input";
            outputName = has.apply("targets") ? "targets" : "output";
        }
        FieldValue in = fields.apply(inputName);
        if (in == null) {
            if (format == RecordFormat.FLAN) {
                return ReadResult.bad(recordId, BadRecordReason.MISSING_FIELD, "\"inputs\" (or \"input\") is required");
            }
            input = "";   // Alpaca records without an input use the no-input prompt, as an empty input does.
        } else if (in.text() == null) {
            return wrongType(recordId, inputName, in);
        } else {
            input = in.text();
        }
        FieldValue out = fields.apply(outputName);
        if (out == null) {
            return ReadResult.bad(recordId, BadRecordReason.MISSING_FIELD, "\"" + outputName + "\" is required");
        }
        if (out.text() == null) {
            return wrongType(recordId, outputName, out);
        }
        output = out.text();
        if (output.isBlank()) {
            return ReadResult.bad(recordId, BadRecordReason.EMPTY_OUTPUT, "\"" + outputName
                    + "\" is empty; a record needs a non-blank target to train on");
        }
        long chars = (long) (instruction == null ? 0 : instruction.length()) + input.length() + output.length();
        if (chars > limits.maxRecordChars()) {
            return ReadResult.bad(recordId, BadRecordReason.TOO_LONG, chars + " characters, more than the limit of "
                    + limits.maxRecordChars() + " (prepare --max-record-chars raises it)");
        }
        return ReadResult.ok(new SourceRecord(recordId, instruction, input, output));
    }

    private static ReadResult wrongType(String recordId, String field, FieldValue v) {
        return ReadResult.bad(recordId, BadRecordReason.WRONG_TYPE, "\"" + field + "\" must be a string, got "
                + v.typeName());
    }
}
