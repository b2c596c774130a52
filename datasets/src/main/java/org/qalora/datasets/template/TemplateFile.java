package org.qalora.datasets.template;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.qalora.datasets.read.SourceRecord;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A user-supplied prompt template: a JSON object with either
 * <ul>
 *   <li>{@code "prompt_input"} and {@code "prompt_no_input"} (chosen by whether the record's input is empty, as
 *       Alpaca's {@code PROMPT_DICT}), or</li>
 *   <li>a single {@code "prompt"} used for every record.</li>
 * </ul>
 * Placeholders are {@code {instruction}} and {@code {input}}; {@code {{} and {@code }}} are literal braces
 * (Python {@code str.format} syntax, so Alpaca's own PROMPT_DICT strings work unchanged). Anything else in
 * braces is an error reported when the file is loaded, naming the file and key.
 */
public final class TemplateFile implements PromptTemplate {

    private static final Set<String> PLACEHOLDERS = Set.of("instruction", "input");

    private final String name;
    private final List<Object> withInput;   // parts: String literal or Placeholder
    private final List<Object> noInput;
    private final String canonical;         // for describe(): the raw strings, so edits change the hash

    private record Placeholder(String field) implements java.io.Serializable {}

    private TemplateFile(String name, List<Object> withInput, List<Object> noInput, String canonical) {
        this.name = name;
        this.withInput = withInput;
        this.noInput = noInput;
        this.canonical = canonical;
    }

    /** Parses a template from the file's bytes; {@code name} is used in error messages. */
    public static TemplateFile parse(byte[] json, String name) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException(name + ": template file is not valid JSON: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(name + ": template file must be a JSON object with \"prompt\" or "
                    + "\"prompt_input\" + \"prompt_no_input\"");
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!Set.of("prompt", "prompt_input", "prompt_no_input").contains(k)) {
                throw new IllegalArgumentException(name + ": unknown key \"" + k
                        + "\" (expected \"prompt\", or \"prompt_input\" and \"prompt_no_input\")");
            }
        }
        String with;
        String without;
        if (root.has("prompt")) {
            if (root.has("prompt_input") || root.has("prompt_no_input")) {
                throw new IllegalArgumentException(name + ": give either \"prompt\" or the pair \"prompt_input\" / "
                        + "\"prompt_no_input\", not both");
            }
            with = text(root, "prompt", name);
            without = with;
        } else {
            with = text(root, "prompt_input", name);
            without = text(root, "prompt_no_input", name);
        }
        return new TemplateFile(name, compile(with, name, root.has("prompt") ? "prompt" : "prompt_input"),
                compile(without, name, root.has("prompt") ? "prompt" : "prompt_no_input"),
                new ObjectMapper().valueToTree(Map.of("with", with, "without", without)).toString());
    }

    private static String text(JsonNode root, String key, String name) {
        JsonNode n = root.get(key);
        if (n == null || !n.isTextual()) {
            throw new IllegalArgumentException(name + ": \"" + key + "\" must be a string");
        }
        return n.asText();
    }

    static List<Object> compile(String s, String name, String key) {
        List<Object> parts = new ArrayList<>();
        StringBuilder lit = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '{' && i + 1 < s.length() && s.charAt(i + 1) == '{') {
                lit.append('{');
                i++;
            } else if (c == '}' && i + 1 < s.length() && s.charAt(i + 1) == '}') {
                lit.append('}');
                i++;
            } else if (c == '{') {
                int end = s.indexOf('}', i);
                if (end < 0) {
                    throw new IllegalArgumentException(name + ": \"" + key + "\": unclosed '{' at character " + i
                            + " (write {{ for a literal brace)");
                }
                String field = s.substring(i + 1, end);
                if (!PLACEHOLDERS.contains(field)) {
                    throw new IllegalArgumentException(name + ": \"" + key + "\": unknown placeholder {" + field
                            + "} (allowed: {instruction}, {input}; write {{ and }} for literal braces)");
                }
                if (!lit.isEmpty()) {
                    parts.add(lit.toString());
                    lit.setLength(0);
                }
                parts.add(new Placeholder(field));
                i = end;
            } else if (c == '}') {
                throw new IllegalArgumentException(name + ": \"" + key + "\": single '}' at character " + i
                        + " (write }} for a literal brace)");
            } else {
                lit.append(c);
            }
        }
        if (!lit.isEmpty()) {
            parts.add(lit.toString());
        }
        return List.copyOf(parts);
    }

    @Override
    public String source(SourceRecord r) {
        boolean hasInput = r.input() != null && !r.input().isEmpty();
        StringBuilder sb = new StringBuilder();
        for (Object p : hasInput ? withInput : noInput) {
            if (p instanceof Placeholder(String field)) {
                String v = field.equals("instruction") ? r.instruction() : r.input();
                if (v == null) {
                    throw new IllegalArgumentException(r.recordId() + ": template " + name + " uses {" + field
                            + "} but the record has no such field");
                }
                sb.append(v);
            } else {
                sb.append((String) p);
            }
        }
        return sb.toString();
    }

    @Override
    public String describe() {
        return "file:" + canonical;
    }
}
