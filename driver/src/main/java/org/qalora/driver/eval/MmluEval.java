package org.qalora.driver.eval;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.datasets.mmlu.MmluData;
import org.qalora.datasets.mmlu.MmluPrompt;
import org.qalora.datasets.mmlu.MmluQuestion;
import org.qalora.datasets.tokenize.TextTokenizer;

/**
 * {@code eval --mmlu}: Hendrycks et al.'s protocol (evaluate_hf.py). Each question's prompt is the subject header,
 * k dev shots and the question ending in "Answer:" ({@link MmluPrompt}), tokenized with BOS; while it is longer
 * than the limit (2048 there) one shot fewer is used. The prediction is the choice whose token has the largest
 * next-token logit, the token of a letter being the last id of {@code tokenizer("A")} (with the LLaMA tokenizer
 * that is "▁A", the letter as it follows "Answer:"). Accuracy per subject and micro-averaged over all questions.
 */
public final class MmluEval {
    private final List<MmluQuestion> questions = new ArrayList<>();
    private final List<EvalItem> items = new ArrayList<>();
    private final int[] choiceIds;
    private final int shots;
    private int shortened;

    private MmluEval(int[] choiceIds, int shots) {
        this.choiceIds = choiceIds;
        this.shots = shots;
    }

    /** The token of each letter A-D: {@code tokenizer(letter).input_ids[-1]}, as evaluate_hf.py takes it. */
    public static int[] choiceIds(TextTokenizer tokenizer) {
        int[] ids = new int[MmluQuestion.LETTERS.size()];
        for (int c = 0; c < ids.length; c++) {
            int[] enc = tokenizer.encode(MmluQuestion.LETTERS.get(c), true);
            ids[c] = enc[enc.length - 1];
        }
        for (int a = 0; a < ids.length; a++) {
            for (int b = a + 1; b < ids.length; b++) {
                if (ids[a] == ids[b]) {
                    throw new IllegalArgumentException("the tokenizer gives the letters " + MmluQuestion.LETTERS.get(a)
                            + " and " + MmluQuestion.LETTERS.get(b) + " the same last token " + ids[a]
                            + ": their logits cannot tell the choices apart");
                }
            }
        }
        return ids;
    }

    public static MmluEval build(MmluData data, int shots, TextTokenizer tokenizer, int maxPromptTokens) {
        MmluEval e = new MmluEval(choiceIds(tokenizer), shots);
        for (var subject : data.test().entrySet()) {
            List<MmluQuestion> dev = data.dev().get(subject.getKey());
            for (MmluQuestion q : subject.getValue()) {
                int k = shots;
                int[] ids = tokenizer.encode(MmluPrompt.prompt(dev, k, q), true);
                while (ids.length > maxPromptTokens && k > 0) {
                    k--;
                    ids = tokenizer.encode(MmluPrompt.prompt(dev, k, q), true);
                }
                if (ids.length > maxPromptTokens) {
                    throw new IllegalArgumentException(q.where() + ": the question alone is " + ids.length
                            + " tokens, more than --max-prompt-tokens " + maxPromptTokens);
                }
                e.shortened += k < shots ? 1 : 0;
                e.items.add(new EvalItem(e.items.size(), ids, new int[0]));
                e.questions.add(q);
            }
        }
        return e;
    }

    public List<EvalItem> items() { return items; }

    public int[] choiceTokenIds() { return choiceIds.clone(); }

    /** The result file's content: micro accuracy, counts, and accuracy per subject (sorted). */
    public Map<String, Object> summarize(List<EvalOutcome> outcomes) {
        if (outcomes.size() != questions.size()) {
            throw new IllegalStateException(outcomes.size() + " outcomes for " + questions.size() + " questions");
        }
        Map<String, int[]> bySubject = new LinkedHashMap<>(); // subject -> {correct, questions}
        int correct = 0;
        for (int i = 0; i < outcomes.size(); i++) {
            MmluQuestion q = questions.get(i);
            boolean right = prediction(outcomes.get(i).choiceLogits()) == q.answerIndex();
            correct += right ? 1 : 0;
            int[] c = bySubject.computeIfAbsent(q.subject(), s -> new int[2]);
            c[0] += right ? 1 : 0;
            c[1]++;
        }
        Map<String, Object> subjects = new LinkedHashMap<>();
        bySubject.forEach((s, c) -> {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("accuracy", (double) c[0] / c[1]);
            m.put("correct", c[0]);
            m.put("questions", c[1]);
            subjects.put(s, m);
        });
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("accuracy", (double) correct / questions.size());
        r.put("correct", correct);
        r.put("questions", questions.size());
        r.put("shots", shots);
        r.put("questions_with_fewer_shots", shortened);
        r.put("subjects", subjects);
        return r;
    }

    /** The index of the largest logit; the first on a tie (numpy's argmax). */
    static int prediction(float[] choiceLogits) {
        int best = 0;
        for (int c = 1; c < choiceLogits.length; c++) {
            if (choiceLogits[c] > choiceLogits[best]) {
                best = c;
            }
        }
        return best;
    }
}
