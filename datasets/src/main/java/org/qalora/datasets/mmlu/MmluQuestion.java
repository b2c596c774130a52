package org.qalora.datasets.mmlu;

import java.io.Serializable;
import java.util.List;

/**
 * One MMLU row: {@code question, A, B, C, D, answer}.
 *
 * @param subject  the file's subject ({@code high_school_physics})
 * @param where    {@code file:line} for messages
 * @param choices  the four answer texts, A to D
 * @param answer   'A' to 'D'
 */
public record MmluQuestion(String subject, String where, String question, List<String> choices, char answer)
        implements Serializable {
    public static final List<String> LETTERS = List.of("A", "B", "C", "D");

    public MmluQuestion {
        choices = List.copyOf(choices);
    }

    /** 0 for A ... 3 for D. */
    public int answerIndex() { return answer - 'A'; }
}
