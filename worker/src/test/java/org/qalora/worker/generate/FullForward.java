package org.qalora.worker.generate;

import java.util.Arrays;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaPass;

/** The oracle for cached generation: the training forward over the whole sequence, no cache, last row's logits. */
final class FullForward {
    private FullForward() {}

    static float[] lastLogits(InferenceModel m, int[] ids) {
        int vocab = m.model().dims().vocab(), t = ids.length;
        ActivationPlan plan = new ActivationPlan(m.model(), m.adapter() == null ? null : m.adapter().config(), 1, t,
                false, false);
        LlamaPass.forward(m.model(), m.adapter(), plan, ids, 0, null);
        return Arrays.copyOfRange(LlamaPass.logits(m.model(), plan), (t - 1) * vocab, t * vocab); // [V]
    }

    /** Greedy continuation by re-running the full forward after every token. */
    static int[] greedy(InferenceModel m, int[] prompt, int newTokens, int eos) {
        int[] seq = prompt.clone();
        int[] out = new int[0];
        for (int i = 0; i < newTokens; i++) {
            int next = TokenSampler.argmax(lastLogits(m, seq), 0, m.model().dims().vocab());
            if (next == eos) {
                break;
            }
            seq = append(seq, next);
            out = append(out, next);
        }
        return out;
    }

    static int[] append(int[] a, int x) {
        int[] b = Arrays.copyOf(a, a.length + 1);
        b[a.length] = x;
        return b;
    }
}
