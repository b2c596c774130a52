package org.qalora.worker.generate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.qalora.quant.util.SplitMix64;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.model.CachedPass;
import org.qalora.worker.model.KvCache;
import org.qalora.worker.model.LlamaModel;

/**
 * Continues token prompts with a model (and optional adapter) through a KV cache. Prompts go in batches: each
 * prompt of a batch is prefilled on its own (no padding), then every unfinished sequence of the batch advances one
 * token per decode step, so the decode matrix products see one row per sequence. A sequence ends at the EOS token
 * (which is not returned) or after {@code maxNewTokens}.
 */
public final class Generator {
    /** Receives each token as soon as it is chosen (EOS included), for streaming. */
    public interface TokenListener {
        void onToken(int prompt, int token);
    }

    /**
     * @param maxNewTokens at most this many tokens per prompt (EOS counts)
     * @param eosId        the token that ends a sequence; -1 for none
     * @param batchSize    prompts decoded together (the KV cache holds this many sequences)
     */
    public record Settings(int maxNewTokens, int eosId, Sampling sampling, int batchSize) {
        public Settings {
            if (maxNewTokens < 1) {
                throw new IllegalArgumentException("max new tokens must be >= 1, got " + maxNewTokens);
            }
            if (batchSize < 1) {
                throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
            }
        }
    }

    private final LlamaModel model;
    private final QaloraAdapter adapter;

    public Generator(LlamaModel model, QaloraAdapter adapter) {
        this.model = model;
        this.adapter = adapter;
    }

    /** The new tokens of every prompt, in prompt order, without the EOS. */
    public List<int[]> generate(List<int[]> prompts, Settings s, TokenListener listener) {
        List<int[]> out = new ArrayList<>(prompts.size());
        for (int from = 0; from < prompts.size(); from += s.batchSize()) {
            out.addAll(batch(prompts, from, Math.min(prompts.size(), from + s.batchSize()), s, listener));
        }
        return out;
    }

    private List<int[]> batch(List<int[]> prompts, int from, int to, Settings s, TokenListener listener) {
        int b = to - from, longest = 0;
        for (int i = from; i < to; i++) {
            longest = Math.max(longest, prompts.get(i).length);
        }
        // The last chosen token is never fed back, so prompt + maxNewTokens - 1 positions suffice.
        try (CachedPass pass = new CachedPass(model, adapter, new KvCache(model, b, longest + s.maxNewTokens() - 1))) {
            return decodeBatch(pass, prompts, from, b, s, listener);
        }
    }

    private List<int[]> decodeBatch(CachedPass pass, List<int[]> prompts, int from, int b, Settings s,
                                    TokenListener listener) {
        int vocab = model.dims().vocab();
        SplitMix64[] rng = new SplitMix64[b];
        int[][] tokens = new int[b][s.maxNewTokens()];
        int[] count = new int[b];
        boolean[] done = new boolean[b];
        for (int j = 0; j < b; j++) {
            rng[j] = TokenSampler.stream(s.sampling().seed(), from + j);
            float[] logits = pass.prefill(j, prompts.get(from + j));                  // [V]
            done[j] = accept(j, TokenSampler.pick(logits, 0, vocab, s.sampling(), rng[j]), tokens, count, s,
                    listener, from);
        }
        while (true) {
            int active = 0;
            for (boolean d : done) {
                active += d ? 0 : 1;
            }
            if (active == 0) {
                break;
            }
            int[] seqs = new int[active];
            int[] ids = new int[active];
            for (int j = 0, n = 0; j < b; j++) {
                if (!done[j]) {
                    seqs[n] = j;
                    ids[n++] = tokens[j][count[j] - 1];
                }
            }
            float[] logits = pass.decode(seqs, ids);                                   // [active, V]
            for (int n = 0; n < active; n++) {
                int j = seqs[n];
                done[j] = accept(j, TokenSampler.pick(logits, n * vocab, vocab, s.sampling(), rng[j]), tokens, count,
                        s, listener, from);
            }
        }
        List<int[]> out = new ArrayList<>(b);
        for (int j = 0; j < b; j++) {
            boolean endsWithEos = count[j] > 0 && tokens[j][count[j] - 1] == s.eosId();
            out.add(Arrays.copyOf(tokens[j], endsWithEos ? count[j] - 1 : count[j]));
        }
        return out;
    }

    /** Records the token; true when the sequence is finished. */
    private static boolean accept(int j, int token, int[][] tokens, int[] count, Settings s, TokenListener listener,
                                  int from) {
        tokens[j][count[j]++] = token;
        if (listener != null) {
            listener.onToken(from + j, token);
        }
        return token == s.eosId() || count[j] == s.maxNewTokens();
    }
}
