package org.qalora.datasets.mmlu;

import java.util.List;

/**
 * The prompt of Hendrycks et al.'s evaluation ({@code format_subject}, {@code format_example} and
 * {@code gen_prompt} of github.com/hendrycks/test evaluate.py / evaluate_hf.py), character for character:
 * <pre>
 * The following are multiple choice questions (with answers) about  high school physics.\n\n
 * {question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer: {X}\n\n      (each of the k dev shots)
 * {question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:
 * </pre>
 * Note the two spaces after "about": {@code format_subject} prefixes every word of the subject with a space and the
 * header adds its own, as the original code does (lm-evaluation-harness writes one space; scores shift slightly).
 */
public final class MmluPrompt {
    private MmluPrompt() {}

    /** {@code format_subject}: " " before each underscore-separated word. */
    static String formatSubject(String subject) {
        StringBuilder s = new StringBuilder();
        for (String word : subject.split("_", -1)) {
            s.append(' ').append(word);
        }
        return s.toString();
    }

    static String header(String subject) {
        return "The following are multiple choice questions (with answers) about " + formatSubject(subject) + ".\n\n";
    }

    /** {@code format_example}: the question, its lettered choices, "Answer:" and, for a shot, " X\n\n". */
    static String example(MmluQuestion q, boolean includeAnswer) {
        StringBuilder s = new StringBuilder(q.question());
        for (int j = 0; j < q.choices().size(); j++) {
            s.append('\n').append(MmluQuestion.LETTERS.get(j)).append(". ").append(q.choices().get(j));
        }
        s.append("\nAnswer:");
        if (includeAnswer) {
            s.append(' ').append(q.answer()).append("\n\n");
        }
        return s.toString();
    }

    /** {@code gen_prompt(dev, subject, k) + format_example(test, i, include_answer=False)}. */
    public static String prompt(List<MmluQuestion> shots, int k, MmluQuestion question) {
        if (k > shots.size()) {
            throw new IllegalArgumentException("asked for " + k + " shots but the dev file of " + question.subject()
                    + " has " + shots.size() + " questions");
        }
        StringBuilder s = new StringBuilder(header(question.subject()));
        for (int i = 0; i < k; i++) {
            s.append(example(shots.get(i), true));
        }
        return s.append(example(question, false)).toString();
    }
}
