package org.qalora.datasets.read;

/**
 * One field of a raw record as the validator sees it, whatever the file format.
 *
 * @param text      the string value, or null when the field is not a string
 * @param typeName  when not a string: what it is ("number", "array", "int32", ...), for the error message
 */
public record FieldValue(String text, String typeName) {
    public static FieldValue string(String s) {
        return new FieldValue(s, null);
    }

    public static FieldValue wrongType(String typeName) {
        return new FieldValue(null, typeName);
    }
}
