package org.qalora.datasets.read;

import com.fasterxml.jackson.databind.JsonNode;

/** Validates one parsed JSON value as a record. */
final class JsonRecords {
    private JsonRecords() {}

    static ReadResult validate(RecordValidator validator, String recordId, JsonNode node) {
        if (node == null || !node.isObject()) {
            return ReadResult.bad(recordId, BadRecordReason.NOT_AN_OBJECT, "expected a JSON object, got "
                    + (node == null ? "nothing" : node.getNodeType().name().toLowerCase(java.util.Locale.ROOT)));
        }
        return validator.validate(recordId, name -> {
            JsonNode v = node.get(name);
            if (v == null || v.isNull()) {
                return null;
            }
            return v.isTextual() ? FieldValue.string(v.textValue())
                    : FieldValue.wrongType(v.getNodeType().name().toLowerCase(java.util.Locale.ROOT));
        }, node::has);
    }
}
